"""Paper broker: each new bar becomes one fill, one mark, the risk checks and one decision.

What: :class:`PaperBroker` processes the bars after an account's last processed bar, each
committed as one unit (:mod:`.state`); :meth:`PaperBroker._process_bar` lists a bar's steps in
the order of its timeline. The mode guard, reconciliation of the logs with the state and
clearing a halt are in :mod:`.operations`.

Why: a paper account must trade exactly as the agents were trained and evaluated (sizes,
fills and costs come from the environment's execution kernel, ``env.execution``) and decide
on nothing after bar t. Timing, costs, share granularity and risk limits: docs/paper_trading.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..env import EnvConfig
from ..env import execution as ex
from ..env.config import DEFAULT_FILL_PRICE
from ..env.ops import SCALAR
from ..errors import InputError
from ..params.base import ParameterError
from .risk import RiskLimits, limit_weights, risk_checks, roll_day, switch_model
from .settlement import Book, settle_bar
from .state import AccountState, AccountStateError, AccountStore, RunSummary, new_account

Decide = Callable[[pd.DataFrame, AccountState], float]
DriftCheck = Callable[[pd.DataFrame], list[dict[str, Any]]]


class PriceDataError(InputError):
    """The price table handed to the broker is unusable; the message names what and where."""


class PolicyOutputError(InputError):
    """The decision function returned something that is not a finite target position."""


# ---------------------------------------------------------------------------------------
# Costs
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostModel:
    """The environment's execution costs and fill price, as the broker reads them.

    Not a parameter block of its own: in a deployment it is built from ``environment``
    (:meth:`from_environment`, validated there), never from copies, so the paper account pays
    exactly what the agents were trained and evaluated with.
    """

    commission_bps: float = 0.0
    slippage_bps: float = 0.0
    borrow_bps_per_bar: float = 0.0
    fill_price: str = DEFAULT_FILL_PRICE  # next_close | next_open, as in the environment

    @classmethod
    def from_environment(cls, environment: EnvConfig | Mapping[str, Any]) -> CostModel:
        """Costs and fill price of the ``environment`` block shared by training and evaluation."""
        env = EnvConfig.parse(environment)
        return cls(
            commission_bps=env.commission_bps,
            slippage_bps=env.slippage_bps,
            borrow_bps_per_bar=env.borrow_bps_per_bar,
            fill_price=env.fill_price,
        )


# ---------------------------------------------------------------------------------------
# Broker
# ---------------------------------------------------------------------------------------
def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).isoformat()


def validate_prices(prices: pd.DataFrame) -> None:
    """The price table's shape: a sorted, unique, tz-naive DatetimeIndex with Open and Close."""
    if not isinstance(prices, pd.DataFrame) or not isinstance(prices.index, pd.DatetimeIndex):
        raise PriceDataError("prices: expected a DataFrame with a DatetimeIndex of bars.")
    missing = [c for c in ("Open", "Close") if c not in prices.columns]
    if missing:
        raise PriceDataError(f"prices: missing columns {missing}; need Open and Close.")
    if prices.index.tz is not None:
        raise PriceDataError("prices: index must be tz-naive like primary_prices.")
    if not prices.index.is_monotonic_increasing or not prices.index.is_unique:
        raise PriceDataError("prices: index must be sorted and unique; sort and de-duplicate it.")


class PaperBroker:
    """Processes new bars into one paper account folder, one committed unit per bar.

    ``granularity``: ``"whole"`` or ``"fractional"`` shares for a new account; ``None`` (the
    default) means the account's recorded granularity, and ``whole`` for a new account. An
    explicit value that differs from an existing account's is refused.
    """

    def __init__(
        self,
        store: AccountStore,
        *,
        initial_capital: float,
        costs: CostModel,
        limits: RiskLimits,
        drift_check: DriftCheck | None = None,
        halt_on_drift: bool = False,
        granularity: str | None = None,
    ) -> None:
        if granularity is not None and granularity not in ex.GRANULARITIES:
            raise ParameterError(
                f"granularity must be one of {list(ex.GRANULARITIES)} (or None for the account's "
                f"own), got {granularity!r}"
            )
        self.store = store
        self.initial_capital = initial_capital
        self.costs = costs
        self.limits = limits
        self.drift_check = drift_check
        self.halt_on_drift = halt_on_drift
        self.granularity = granularity

    def run(
        self,
        prices: pd.DataFrame,
        decide: Decide,
        *,
        model_id: str | None = None,
        max_bars: int | None = None,
        start: pd.Timestamp | str | None = None,
    ) -> RunSummary:
        """Process every bar after the last committed one (at most ``max_bars``).

        ``start``: a new account's first bar is the first bar on or after this date; earlier
        bars are only history that ``decide`` may look at (e.g. for feature warm-up).
        """
        validate_prices(prices)
        with self.store.locked():
            state = self._open_account(model_id)
            self._rules = execution_rules(self.costs, state.granularity)
            first = first_bar_to_process(prices.index, state.last_bar, start)
            stop = len(prices) if max_bars is None else min(len(prices), first + max_bars)
            first_bar = None
            for i in range(first, stop):
                if i == first:  # this run opens the account's newest session
                    state = dataclasses.replace(state, session_first_bar=_iso(prices.index[i]))
                state = self._process_bar(state, prices, i, decide, model_id)
                first_bar = first_bar or state.last_bar
            return RunSummary(stop - first, first_bar, state.last_bar, state)

    def _open_account(self, model_id: str | None) -> AccountState:
        """The committed account; a folder without one gets a new, flat account holding
        ``initial_capital`` in cash. Another granularity than the recorded one is refused."""
        if not self.store.exists():
            self.store.initialize(new_account(self.initial_capital, model_id, self.granularity or "whole"))
        state = self.store.load()
        if not isinstance(state, AccountState):
            raise AccountStateError(
                f"{self.store.folder}: the account trades the universe {list(state.tickers)}, not "
                "one instrument; use a new account folder. Nothing was traded."
            )
        if self.granularity is not None and state.granularity != self.granularity:
            raise AccountStateError(
                f"{self.store.folder}: the account trades {state.granularity} shares (recorded "
                f"when it was created) and cannot switch to {self.granularity} shares; use a new "
                "account folder for another granularity. Nothing was traded."
            )
        return state

    # -- one bar -------------------------------------------------------------------------
    def _process_bar(
        self,
        state: AccountState,
        prices: pd.DataFrame,
        i: int,
        decide: Decide,
        model_id: str | None,
    ) -> AccountState:
        """Bar ``i``, in the order of its timeline; its log lines and new state are committed
        as one unit (all or nothing, see :mod:`.state`)."""
        bar = _Bar.of(prices, i)
        history = prices.iloc[: i + 1]  # all that the policy and the drift check may see
        s, events = switch_model(state, bar.at, model_id)
        s = roll_day(s, bar.day)
        s, trades, mark = self._fill_and_mark(s, bar)
        alerts = self.drift_check(history) if self.drift_check is not None else []
        s, risk_events = risk_checks(s, bar.at, bar.day, self.limits, alerts, self.halt_on_drift)
        s, order = self._decide(s, bar, history, decide)
        return self.store.commit(
            s, {"orders": [order], "trades": trades, "equity": [mark], "events": events + risk_events}
        )

    def _fill_and_mark(self, s: AccountState, bar: _Bar) -> tuple[AccountState, list[dict], dict[str, Any]]:
        """Fill the order decided at the previous bar's close at this bar's reference price
        (``Close`` or ``Open``, as ``environment.fill_price`` says) and mark at the close, in one
        settlement (:func:`~.settlement.settle_bar`: the kernel's fill, costs, cash, borrow and
        equity; a short pays borrow on its notional, as in the env); then update the holding's
        entry price and bars held (the observation's inputs) with the kernel, as the env does.
        Returns the state, the bar's trades and its equity mark."""
        ref = bar.close if self.costs.fill_price == "next_close" else bar.open
        delta, target, decided_at = 0.0, s.pending_target, s.pending_decided_at
        if target is not None and target != s.held_target:  # trade only when the target changed
            s = dataclasses.replace(s, held_target=target)
            delta = ex.execute_order(SCALAR, self._rules, target, s.cash, float(s.shares), ref)[0]
        long_order = target is not None and 0 <= target <= 1
        book, booked, _, marked = settle_bar(
            _book(s), self._rules, [ref], [delta], [bar.close], long_order=long_order
        )
        trades, fill = [], ref
        if booked:
            (t,) = booked
            delta, fill = t["shares"], t["fill_price"]
            extra = ("commission", "slippage") if s.fractional else ()
            trades.append(
                {
                    "bar": bar.at,
                    "decided_at": decided_at,
                    "reference_price": ref,
                    "fill_rule": self.costs.fill_price,
                    "target": target,
                    "side": "buy" if t["shares"] > 0 else "sell",
                    **{
                        k: t[k]
                        for k in (
                            "shares",
                            "fill_price",
                            "notional_cents",
                            "commission_cents",
                            "slippage_cents",
                        )
                    },
                    "cash_after_cents": s.cash_cents - t["notional_cents"] - t["commission_cents"]
                    if not s.fractional
                    else round((s.exact_cash - t["notional"] - t["commission"]) * 100),
                    "shares_after": book.shares[0],
                    **{k: t[k] for k in extra},
                    **(
                        {"cash_after": s.exact_cash - t["notional"] - t["commission"]} if s.fractional else {}
                    ),
                }
            )
        else:
            delta = 0.0
        _, entry, held_bars = ex.position_after(
            SCALAR, float(s.shares), float(delta), fill, s.entry_price, s.bars_held
        )
        s = dataclasses.replace(
            s,
            pending_target=None,
            pending_decided_at=None,
            entry_price=entry,
            bars_held=held_bars,
            cash_cents=book.cash_cents,
            exact_cash=book.exact_cash,
            shares=book.shares[0],
            equity_cents=marked["equity_cents"],
        )
        exact = {}
        if s.fractional:
            exact = {"cash": marked["cash"], "equity": marked["equity"], "borrow": marked["borrow"]}
            s = dataclasses.replace(s, exact_equity=marked["equity"])
        position = (s.shares * bar.close / s.equity) if s.equity_cents > 0 else 0.0
        s = dataclasses.replace(
            s,
            peak_equity_cents=max(s.peak_equity_cents, s.equity_cents),
            position=position,
            last_close=bar.close,
        )
        mark = {
            "bar": bar.at,
            "open": bar.open,
            "close": bar.close,
            "cash_cents": s.cash_cents,
            "shares": s.shares,
            "equity_cents": s.equity_cents,
            "position": s.position,
            "peak_equity_cents": s.peak_equity_cents,
            "drawdown": s.drawdown,
            "borrow_cents": marked["borrow_cents"],
            **exact,
        }
        return s, trades, mark

    # -- the decision ----------------------------------------------------------------------
    def _decide(
        self, s: AccountState, bar: _Bar, history: pd.DataFrame, decide: Decide
    ) -> tuple[AccountState, dict[str, Any]]:
        """Exactly one decision for this bar: flat when halted, else the policy's target within
        the risk limits. It stays pending and fills at the next bar. Returns the order record."""
        if s.halted:
            policy_target, target, why = None, 0.0, "halted: " + str(s.halt_reason)
        else:
            policy_target = _as_target(decide(history, s), bar.at)
            limited, why = limit_weights([policy_target], [s.position], self.limits, s.day_loss_stop)
            target = float(limited[0])
        fills_at = "close" if self.costs.fill_price == "next_close" else "open"
        order = {
            "bar": bar.at,
            "policy_target": policy_target,
            "target": target,
            "reason": why,
            "model_id": s.active_model_id,
            "fills_at": "next bar " + fills_at,
        }
        s = dataclasses.replace(
            s,
            pending_target=target,
            pending_decided_at=bar.at,
            last_bar=bar.at,
            bars_processed=s.bars_processed + 1,
        )
        return s, order


def _book(s: AccountState) -> Book:
    """The account's money and its one holding, as the settlement books them."""
    return Book(s.granularity, s.cash_cents, s.exact_cash, (s.shares,))


@dataclass(frozen=True)
class _Bar:
    """One bar as the broker books it: time stamp (as logged), calendar date, Open and Close."""

    at: str
    day: str
    open: float
    close: float

    @classmethod
    def of(cls, prices: pd.DataFrame, i: int) -> _Bar:
        """Bar ``i`` of ``prices``; prices that are not finite and positive are refused."""
        ts = prices.index[i]
        bar = _iso(ts)
        open_, close = float(prices["Open"].iloc[i]), float(prices["Close"].iloc[i])
        if not (math.isfinite(open_) and math.isfinite(close) and open_ > 0 and close > 0):
            raise PriceDataError(
                f"prices: bar {bar} has Open={open_!r}, Close={close!r}; prices must be finite "
                "and positive. Fix the source data; nothing was traded for this bar."
            )
        return cls(bar, ts.date().isoformat(), open_, close)


def _as_target(raw: Any, bar: str) -> float:
    """The decision function's output as a finite target position, or a :class:`PolicyOutputError`."""
    try:
        target = float(raw)
    except (TypeError, ValueError) as exc:
        raise PolicyOutputError(
            f"decision at bar {bar} returned {raw!r}, not a number; nothing was traded."
        ) from exc
    if not math.isfinite(target):
        raise PolicyOutputError(
            f"decision at bar {bar} returned {target!r}; a target position must "
            "be finite. Check the policy and its features; nothing was traded."
        )
    return target


def first_bar_to_process(
    index: pd.DatetimeIndex, last_bar: str | None, start: pd.Timestamp | str | None = None
) -> int:
    """Position in ``index`` of the first bar to process: the bar after the account's last
    processed bar; for a new account the first bar on or after ``start`` (else the first)."""
    if last_bar is not None:
        return int(index.searchsorted(pd.Timestamp(last_bar), side="right"))
    if start is not None:
        return int(index.searchsorted(pd.Timestamp(start), side="left"))
    return 0


def execution_rules(costs: CostModel, granularity: str = "whole") -> ex.ExecutionRules:
    """The kernel's rules for ``costs`` (``environment.*`` basis points) at ``granularity``."""
    try:
        return ex.ExecutionRules.from_bps(
            costs.commission_bps, costs.slippage_bps, costs.borrow_bps_per_bar, granularity
        )
    except ValueError as exc:
        raise ParameterError(
            f"environment costs (commission_bps={costs.commission_bps}, slippage_bps="
            f"{costs.slippage_bps}, borrow_bps_per_bar={costs.borrow_bps_per_bar}): {exc}; "
            "costs are basis points below 10000."
        ) from exc
