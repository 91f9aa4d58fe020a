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
from typing import Annotated, Any

import pandas as pd
from pydantic import Field

from ..env import EnvConfig
from ..env import execution as ex
from ..env.config import DEFAULT_FILL_PRICE
from ..env.ops import SCALAR
from ..errors import InputError
from ..params.base import Number, ParameterError
from ..params.deployment import RiskParams
from .settlement import Book, book_fills, book_mark
from .state import AccountState, AccountStateError, AccountStore, new_account

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
# Risk limits
# ---------------------------------------------------------------------------------------
class RiskLimits(RiskParams):
    """Risk limits given in code (library use, tests): no stop unless one is asked for. The
    ``deployment.risk`` parameter block (:class:`~..params.deployment.RiskParams`) has the same
    fields and checks, with the project's default stops."""

    max_daily_loss: Annotated[Number, Field(gt=0, lt=1)] | None = None
    max_drawdown: Annotated[Number, Field(gt=0, lt=1)] | None = None


# ---------------------------------------------------------------------------------------
# Broker
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSummary:
    bars_processed: int
    first_bar: str | None
    last_bar: str | None
    state: AccountState


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
        s, events = self._switch_model(state, bar, model_id)
        s = self._roll_day(s, bar)
        s, trades = self._fill_pending_order(s, bar)
        s, mark = self._mark_at_close(s, bar)
        s, risk_events = self._apply_risk_checks(s, bar, history)
        s, order = self._decide(s, bar, history, decide)
        return self.store.commit(
            s, {"orders": [order], "trades": trades, "equity": [mark], "events": events + risk_events}
        )

    @staticmethod
    def _switch_model(s: AccountState, bar: _Bar, model_id: str | None) -> tuple[AccountState, list[dict]]:
        """Another model takes over: record a ``model_switch`` event; the account (cash, shares,
        history) continues."""
        if model_id is None or model_id == s.active_model_id:
            return s, []
        event = {"bar": bar.at, "kind": "model_switch", "from": s.active_model_id, "to": model_id}
        return dataclasses.replace(s, active_model_id=model_id), [event]

    @staticmethod
    def _roll_day(s: AccountState, bar: _Bar) -> AccountState:
        """A bar on a new calendar date resets the day-loss stop and the day's start equity."""
        if bar.day == s.day:
            return s
        return dataclasses.replace(s, day=bar.day, day_start_equity_cents=s.equity_cents, day_loss_stop=False)

    def _fill_pending_order(self, s: AccountState, bar: _Bar) -> tuple[AccountState, list[dict]]:
        """Fill the order decided at the previous bar's close at this bar's reference price
        (``Close`` or ``Open``, as ``environment.fill_price`` says), then update the holding's
        entry price and bars held (the observation's inputs) with the kernel, as the env does."""
        ref = bar.close if self.costs.fill_price == "next_close" else bar.open
        shares_before, delta, fill, trades = s.shares, 0, ref, []
        if s.pending_target is not None:
            s, trade = self._fill(s, bar.at, ref)
            if trade is not None:
                trades.append(trade)
                delta, fill = trade["shares"], trade["fill_price"]
            s = dataclasses.replace(s, pending_target=None, pending_decided_at=None)
        _, entry, held_bars = ex.position_after(
            SCALAR, float(shares_before), float(delta), fill, s.entry_price, s.bars_held
        )
        return dataclasses.replace(s, entry_price=entry, bars_held=held_bars), trades

    def _mark_at_close(self, s: AccountState, bar: _Bar) -> tuple[AccountState, dict[str, Any]]:
        """Mark equity at the close (a short pays borrow on its notional, as in the env);
        update peak equity and position. Returns the state and the bar's equity mark."""
        book, booked = book_mark(_book(s), self._rules, [bar.close])
        borrow_cents = booked["borrow_cents"]
        s = dataclasses.replace(s, cash_cents=book.cash_cents, equity_cents=booked["equity_cents"])
        exact = {}
        if s.fractional:
            exact = {"cash": booked["cash"], "equity": booked["equity"], "borrow": booked["borrow"]}
            s = dataclasses.replace(s, exact_cash=booked["cash"], exact_equity=booked["equity"])
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
            "borrow_cents": borrow_cents,
            **exact,
        }
        return s, mark

    # -- risk checks: each may only add a restriction --------------------------------------
    def _apply_risk_checks(
        self, s: AccountState, bar: _Bar, history: pd.DataFrame
    ) -> tuple[AccountState, list[dict]]:
        """The risk limits at the close, in this order: the drawdown kill switch, the day-loss
        stop, the optional drift check. Returns the state and the events they record."""
        s, halt = self._drawdown_kill_switch(s, bar)
        s, stop = self._day_loss_stop(s, bar)
        s, drift = self._drift_check(s, bar, history)
        return s, halt + stop + drift

    def _drawdown_kill_switch(self, s: AccountState, bar: _Bar) -> tuple[AccountState, list[dict]]:
        """Drawdown beyond ``max_drawdown`` halts the account: flat from the next bar until a
        person clears it (``kedro paper clear-halt``)."""
        limit = self.limits.max_drawdown
        if limit is None or s.halted or s.drawdown > -limit:
            return s, []
        reason = (
            f"max drawdown kill switch: drawdown {s.drawdown:.4%} at {bar.at} breached "
            f"deployment.risk.max_drawdown={limit}"
        )
        event = {"bar": bar.at, "kind": "halt", "cause": "max_drawdown", "reason": reason}
        return dataclasses.replace(s, halted=True, halt_reason=reason), [event]

    def _day_loss_stop(self, s: AccountState, bar: _Bar) -> tuple[AccountState, list[dict]]:
        """A loss of ``max_daily_loss`` since the day's start sets the day-loss stop: orders
        decided for the rest of the day may not increase risk."""
        limit, start = self.limits.max_daily_loss, s.day_start_equity_cents
        if limit is None or s.day_loss_stop or start <= 0 or s.equity_cents > start * (1 - limit):
            return s, []
        loss = s.equity_cents / start - 1
        event = {
            "bar": bar.at,
            "kind": "day_loss_stop",
            "day": bar.day,
            "loss": loss,
            "reason": f"day loss {loss:.4%} breached deployment.risk.max_daily_loss={limit}",
        }
        return dataclasses.replace(s, day_loss_stop=True), [event]

    def _drift_check(
        self, s: AccountState, bar: _Bar, history: pd.DataFrame
    ) -> tuple[AccountState, list[dict]]:
        """Record the drift monitor's alerts; with ``halt_on_drift`` an alert halts the account
        (flat until a person clears it)."""
        if self.drift_check is None:
            return s, []
        alerts = self.drift_check(history)
        events = [{"bar": bar.at, "kind": "drift_alert", **alert} for alert in alerts]
        if alerts and self.halt_on_drift and not s.halted:
            feats = sorted({str(a.get("feature")) for a in alerts})
            reason = f"drift alert on {feats} at {bar.at}; flat until a person clears it"
            s = dataclasses.replace(s, halted=True, halt_reason=reason)
            events.append({"bar": bar.at, "kind": "halt", "cause": "drift", "reason": reason})
        return s, events

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
            target, why = self._limit_target(policy_target, s)
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

    def _limit_target(self, policy_target: float, s: AccountState) -> tuple[float, str]:
        """The target within ``max_position_fraction`` and, under the day-loss stop, no new
        risk (no new position, no flip, no larger size); with the reason."""
        cap = self.limits.max_position_fraction
        target = min(max(policy_target, -cap), cap)
        why = "policy" if target == policy_target else "clipped to max_position_fraction"
        if s.day_loss_stop:
            current = s.position
            if target * current < 0 or (current == 0 and target != 0):
                return 0.0, "day-loss stop: no new risk"
            if abs(target) > abs(current):
                return math.copysign(abs(current), target), "day-loss stop: capped"
        return target, why

    # -- fills -------------------------------------------------------------------------------
    def _fill(self, s: AccountState, bar: str, ref: float) -> tuple[AccountState, dict | None]:
        """Trade toward the pending target, only when it changed (like the env), with the
        kernel's size, fill price and costs; booked at the account's granularity."""
        target = float(s.pending_target)
        if target == s.held_target:
            return s, None
        s = dataclasses.replace(s, held_target=target)
        delta = ex.order_quantity(SCALAR, self._rules, target, s.cash, float(s.shares), ref)
        book, booked, _ = book_fills(_book(s), self._rules, [ref], [delta], long_order=0 <= target <= 1)
        if not booked:
            return s, None
        (t,) = booked
        extra = ("commission", "slippage") if s.fractional else ()
        trade = {
            "bar": bar,
            "decided_at": s.pending_decided_at,
            "reference_price": ref,
            "fill_rule": self.costs.fill_price,
            "target": target,
            "side": "buy" if t["shares"] > 0 else "sell",
            **{
                k: t[k]
                for k in ("shares", "fill_price", "notional_cents", "commission_cents", "slippage_cents")
            },
            "cash_after_cents": book.cash_cents,
            "shares_after": book.shares[0],
            **{k: t[k] for k in extra},
            **({"cash_after": book.exact_cash} if s.fractional else {}),
        }
        s = dataclasses.replace(
            s, cash_cents=book.cash_cents, exact_cash=book.exact_cash, shares=book.shares[0]
        )
        return s, trade


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
