"""One paper account for N >= 1 assets: each new bar becomes one fill, one mark, the risk checks
and one decision, committed as one unit.

What: :class:`PaperAccount` processes the bars after an account's last processed bar into one
account folder (:class:`~.state.AccountStore`, or the Kedro node's in-memory
:class:`~.state.StagedAccount`); :meth:`PaperAccount._process_bar` lists a bar's steps in the order
of its timeline, for every N: model switch, day roll, the pending order filled and the account
marked by the one settlement (:func:`~.settlement.settle_bar`, the execution kernel's), the drift
alerts, the risk checks (:mod:`.risk`) and the decision, then one commit. One :class:`FrontEnd`
does the fill, the mark and the decision for every N, with one log layout; what depends on the
environment the policy was trained in (the feed it reads, how a decision becomes traded shares,
when it fills, what the decider sees) is the front end's rule: :class:`TargetPosition` (one
asset's Open / Close prices, a target position sized in closed form, fills at the next close or
open, as ``env.core``: the N = 1 fast path) or :class:`TargetWeights` (a
:class:`~..panel.PortfolioPanel` feed of N tickers, target weights sized jointly by a
one-lane :class:`~..env.portfolio.PortfolioCore`, fills at the next close, as the portfolio
replay). Build one with :meth:`PaperAccount.instrument` or :meth:`PaperAccount.universe`. The
mode guard, reconciliation of the logs with the state and clearing a halt are in
:mod:`.operations`; :func:`portfolio_ledger` reads an account's per-bar ledger.

Why: a paper account must trade exactly as the agents were trained and evaluated (sizes, fills
and costs come from the execution kernel, ``env.execution``) and decide on nothing after bar t;
the bar's timeline, halts, journal and logs must mean the same for one asset and for twenty.
Timing, costs, share granularity, risk limits, files and errors: docs/paper_trading.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..env import EnvConfig
from ..env import execution as ex
from ..env.config import DEFAULT_FILL_PRICE
from ..env.ops import SCALAR
from ..env.portfolio import PortfolioCore, PortfolioInputError
from ..errors import InputError
from ..panel import PortfolioPanel
from ..params.base import ParameterError
from .operations import reconcile
from .risk import RiskLimits, limit_weights, risk_checks, roll_day, show, switch_model
from .settlement import Book, settle_bar
from .state import INSTRUMENT, AccountState, AccountStateError, RunSummary, new_account

Decide = Callable[[pd.DataFrame, AccountState], float]
Decider = Callable[[torch.Tensor, int], object]
DriftCheck = Callable[..., list[dict[str, Any]]]

#: the EnvConfig fields a universe account records at creation and never changes
CONFIG_FIELDS = (
    "window",
    "initial_capital",
    "commission_bps",
    "slippage_bps",
    "borrow_bps_per_bar",
    "long_only",
    "gross_leverage",
    "band",
)


class PriceDataError(InputError):
    """The price table handed to the account is unusable; the message names what and where."""


class PolicyOutputError(InputError):
    """The decision function returned something that is not a finite target position."""


class PortfolioFeedError(PortfolioInputError):
    """The feed cannot be traded on: a ticker is absent or has no close, dates break, prices changed."""


class PortfolioWeightsError(PortfolioInputError):
    """The decider returned weights that are not finite or break the bounds (names ticker and date)."""


@dataclass(frozen=True)
class CostModel:
    """The environment's execution costs and fill price, as an instrument account reads them.

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


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).isoformat()


def _num(x: float) -> float | None:
    """JSON-safe float: NaN (ticker not listed yet) as null."""
    return None if not math.isfinite(x) else float(x)


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


def _config_record(config: EnvConfig) -> dict[str, Any]:
    return {k: getattr(config, k) for k in CONFIG_FIELDS}


# ---------------------------------------------------------------------------------------
# The account
# ---------------------------------------------------------------------------------------
class PaperAccount:
    """Trades a decider into one account folder, one committed unit per bar, for N >= 1 assets.

    ``store``: an :class:`~.state.AccountStore` (a folder) or a :class:`~.state.StagedAccount`;
    ``front``: the account's :class:`FrontEnd` (build the account with :meth:`instrument` or
    :meth:`universe`); ``limits``: :class:`~.risk.RiskLimits`; ``drift_check``: the drift
    monitor's alerts at a bar (given what the front end's rule gives it: the price history up to
    the bar, or the feed and its row), recorded each bar; with ``halt_on_drift`` an alert halts
    the account.
    """

    def __init__(
        self,
        store: Any,
        front: FrontEnd,
        *,
        limits: RiskLimits | None = None,
        drift_check: DriftCheck | None = None,
        halt_on_drift: bool = False,
    ) -> None:
        self.store = store
        self.front = front
        self.limits = limits or RiskLimits()
        self.drift_check = drift_check
        self.halt_on_drift = halt_on_drift

    @classmethod
    def instrument(
        cls,
        store: Any,
        *,
        initial_capital: float,
        costs: CostModel,
        limits: RiskLimits | None = None,
        drift_check: Callable[[pd.DataFrame], list[dict[str, Any]]] | None = None,
        halt_on_drift: bool = False,
        granularity: str | None = None,
        ticker: str = INSTRUMENT,
    ) -> PaperAccount:
        """An account over one instrument's Open / Close prices: a universe of one ``ticker``
        (the feed's name; :data:`~.state.INSTRUMENT` when it has none) whose rule is
        :class:`TargetPosition`. ``granularity``: ``None`` means the account's recorded one
        (``whole`` for a new account). ``drift_check(history)``."""
        front = FrontEnd((ticker,), TargetPosition(initial_capital, costs), granularity)
        return cls(store, front, limits=limits, drift_check=drift_check, halt_on_drift=halt_on_drift)

    @classmethod
    def universe(
        cls,
        store: Any,
        tickers: Sequence[str],
        config: EnvConfig,
        *,
        granularity: str = "whole",
        limits: RiskLimits | None = None,
        drift_check: Callable[[PortfolioPanel, int], list[dict[str, Any]]] | None = None,
        halt_on_drift: bool = False,
    ) -> PaperAccount:
        """An account over a universe's feed of N >= 1 tickers whose rule is
        :class:`TargetWeights`. ``drift_check(feed, row)``."""
        front = FrontEnd(tickers, TargetWeights(config), granularity)
        return cls(store, front, limits=limits, drift_check=drift_check, halt_on_drift=halt_on_drift)

    # -- accessors -----------------------------------------------------------------------
    def state(self) -> AccountState:
        return self.store.load()

    def log(self, name: str) -> list[dict[str, Any]]:
        """Committed records of one log: ``orders``, ``trades``, ``equity`` or ``events``."""
        return self.store.read_log(name, self.store.load())

    def ledger(self) -> pd.DataFrame:
        """The account's per-bar ledger (:func:`portfolio_ledger`)."""
        return portfolio_ledger(self.store)

    # -- running ---------------------------------------------------------------------------
    def run(
        self,
        feed: Any,
        decide: Decide | Decider,
        *,
        model_id: str | None = None,
        max_bars: int | None = None,
        start: pd.Timestamp | str | None = None,
    ) -> RunSummary:
        """Process every bar of ``feed`` after the account's last processed one (at most
        ``max_bars``). A new account's first bar is the first bar on or after ``start`` (earlier
        bars are history the decider may look at); the rule's default otherwise. The feed is
        checked before anything is written (see the rule); an account folder's logs are
        reconciled with its state first (:func:`~.operations.reconcile`)."""
        self.front.rule.validate(feed)
        with self.store.locked():
            state = self.front.open(self.store, model_id)
            if hasattr(self.store, "read_log"):  # a folder, not a staged batch
                reconcile(self.store)
            first, stop = self.front.rule.prepare(feed, state, start, max_bars)
            if first >= stop:
                return RunSummary(0, None, state.last_bar, state)
            first_bar = None
            for i in range(first, stop):
                if i == first:  # this run opens the account's newest session
                    state = dataclasses.replace(state, session_first_bar=self.front.rule.stamp(i)[0])
                state = self._process_bar(state, i, decide, model_id)
                first_bar = first_bar or state.last_bar
            return RunSummary(stop - first, first_bar, state.last_bar, state)

    def _process_bar(self, state: AccountState, i: int, decide: Any, model_id: str | None) -> AccountState:
        """Bar ``i``, in the order of its timeline; its log lines and new state are committed
        as one unit (all or nothing, see :mod:`.state`)."""
        front = self.front
        at, day = front.rule.stamp(i)
        s, events = switch_model(state, at, model_id)
        s = roll_day(s, day)
        s, trades, mark = front.fill_and_mark(s, i, at)
        alerts = self.drift_check(*front.rule.drift_args(i)) if self.drift_check is not None else []
        s, risk_events = risk_checks(s, at, day, self.limits, alerts, self.halt_on_drift)
        s, order = front.decide(s, i, at, decide, self.limits)
        return self.store.commit(
            s, {"orders": [order], "trades": trades, "equity": [mark], "events": events + risk_events}
        )


# ---------------------------------------------------------------------------------------
# The front end: one fill, mark and decision for every N
# ---------------------------------------------------------------------------------------
class FrontEnd:
    """How an account over ``tickers`` turns decisions into trades, for every N: the account's
    identity (tickers, granularity and the rule's record, fixed for its lifetime), the fill and
    mark of a bar (:meth:`fill_and_mark`) and its decision (:meth:`decide`), each written once,
    with one log layout. What depends on the environment the policy was trained in is the
    ``rule``: the feed it reads, the reference prices of a fill, how a decision becomes traded
    shares and what the decider sees (:class:`TargetPosition`: one asset's target position,
    sized in closed form as ``env.core``; :class:`TargetWeights`: N assets' target weights,
    sized jointly by a one-lane ``PortfolioCore``).

    ``granularity``: ``"whole"`` or ``"fractional"`` shares for a new account; ``None`` means the
    account's recorded granularity (``whole`` for a new one). A value that differs from an
    existing account's is refused, as are other tickers or another rule record. At N = 1 the
    placeholder ticker :data:`~.state.INSTRUMENT` (a feed or an account without a name) matches
    any one ticker, and the account keeps the ticker it recorded.
    """

    def __init__(self, tickers: Sequence[str], rule: TargetPosition | TargetWeights, granularity: str | None):
        if granularity is not None and granularity not in ex.GRANULARITIES:
            raise ParameterError(
                f"granularity must be one of {list(ex.GRANULARITIES)} (or None for the account's "
                f"own), got {granularity!r}"
            )
        tickers = tuple(str(t) for t in tickers)
        if not tickers or len(set(tickers)) != len(tickers):
            raise AccountStateError(f"an account needs one or more distinct tickers, got {list(tickers)}")
        if len(tickers) != 1 and isinstance(rule, TargetPosition):
            raise ParameterError(f"a target-position account trades one asset, got tickers {list(tickers)}")
        self.tickers, self.rule, self.granularity = tickers, rule, granularity

    def open(self, store: Any, model_id: str | None) -> AccountState:
        """The committed account; a folder without one gets a new, flat account holding the
        rule's initial capital in cash. Another identity than the recorded one is refused."""
        record = self.rule.record()
        if not store.exists():
            capital = self.rule.initial_capital
            store.initialize(
                new_account(capital, model_id, self.granularity or "whole", self.tickers, record)
            )
        state = store.load()
        if (state.config is None) != (record is None):
            raise AccountStateError(
                f"{store.folder}: the account trades {list(state.tickers)} with "
                f"{'target weights of a portfolio config' if state.config else 'one target position'}"
                f", not {list(self.tickers)} with "
                f"{'target weights' if record else 'a target position'}; use a new account folder. "
                "Nothing was traded."
            )
        problems = []
        if len(self.tickers) == len(state.tickers) == 1 and INSTRUMENT in (*self.tickers, *state.tickers):
            self.tickers = state.tickers  # one asset without a name on either side: the recorded one
        if state.tickers != self.tickers:
            problems.append(f"tickers {list(state.tickers)} (asked for {list(self.tickers)})")
        if self.granularity is not None and state.granularity != self.granularity:
            problems.append(f"{state.granularity} shares (asked for {self.granularity})")
        if record is not None and state.config != record:
            diff = {k: (state.config.get(k), record[k]) for k in record if state.config.get(k) != record[k]}
            problems.append(f"config (recorded, asked) {diff}")
        if problems:
            raise AccountStateError(
                f"{store.folder}: the account was created with {'; '.join(problems)}; these never "
                "change for an account. Use a new account folder for another one. Nothing was traded."
            )
        self.exec_rules = self.rule.execution_rules(state.granularity)
        return state

    def fill_and_mark(
        self, s: AccountState, i: int, at: str
    ) -> tuple[AccountState, list[dict[str, Any]], dict[str, Any]]:
        """The pending order (decided at the previous bar) sized by the rule, filled at this bar's
        reference prices and marked at its closes by the one settlement
        (:func:`~.settlement.settle_bar`: the kernel's fill prices, costs, cash, borrow and
        equity). Returns the state, the bar's trades and its equity mark."""
        ref, close, closes = self.rule.bar_prices(i)
        held, delta, band_off = self.rule.order(s, i, ref, self.exec_rules)
        w = s.pending_weights or ()
        long_order = self.rule.long_only or (min(w, default=0.0) >= 0 and sum(w) <= 1)
        book, booked, totals, marked = settle_bar(
            _book(s), self.exec_rules, ref, delta, close, long_order=long_order
        )
        trades = [
            {
                "bar": at,
                "decided_at": s.pending_decided_at,
                "ticker": self.tickers[t["asset"]],
                "side": "buy" if t["shares"] > 0 else "sell",
                "shares": t["shares"],
                "reference_price": ref[t["asset"]],
                "fill_rule": self.rule.fill_price,
                "target_weight": s.pending_weights[t["asset"]],
                **{k: v for k, v in t.items() if k not in ("asset", "shares")},
            }
            for t in booked
        ]
        kept = self.rule.after_fill(s, booked, ref)
        cents = {
            "commission_cents": totals["commission_cents"],
            "slippage_cents": totals["slippage_cents"],
            "borrow_cents": marked["borrow_cents"],
            "traded_notional_cents": totals["traded_notional_cents"],
        }
        if s.fractional:
            money = {k: totals[k] for k in ("paid", "commission", "slippage", "traded_notional")}
            money.update(
                borrow=marked["borrow"],
                cost=totals["commission"] + totals["slippage"] + marked["borrow"],
                cash=marked["cash"],
                equity=marked["equity"],
            )
        else:
            money = {k.removesuffix("_cents"): v / 100 for k, v in cents.items()}
            money.update(
                cash=book.cash_cents / 100,
                equity=marked["equity_cents"] / 100,
                cost=(cents["commission_cents"] + cents["slippage_cents"] + cents["borrow_cents"]) / 100,
            )
        filled = s.pending_decided_at
        s = dataclasses.replace(
            s,
            cash_cents=book.cash_cents,
            exact_cash=book.exact_cash,
            equity_cents=marked["equity_cents"],
            exact_equity=marked.get("equity"),
            shares=book.shares,
            last_bar=at,
            last_close=closes,
            peak_equity_cents=max(s.peak_equity_cents, marked["equity_cents"]),
            pending_weights=None,
            pending_hold=False,
            pending_decided_at=None,
            **held,
            **kept,
        )
        mark = {
            "bar": at,
            **self.rule.opens(i),
            "closes": list(closes),
            "shares": list(s.shares),
            "weights": list(s.weights()),
            "cash_cents": s.cash_cents,
            "equity_cents": s.equity_cents,
            "market_value_cents": marked["market_value_cents"],
            "peak_equity_cents": s.peak_equity_cents,
            "drawdown": s.drawdown,
            "band_off": band_off,
            "filled": filled,
            **cents,
            **money,
        }
        return s, trades, mark

    def decide(
        self, s: AccountState, i: int, at: str, decide: Any, limits: RiskLimits
    ) -> tuple[AccountState, dict[str, Any]]:
        """Exactly one decision for this bar: all cash when halted, else the decider's targets
        (checked by the rule, then within the risk limits against each asset's weight at this
        close). It fills at the next bar. Returns the state and the order record."""
        n = len(self.tickers)
        hold, policy = False, None
        if s.halted:
            w, why = np.zeros(n), "halted: " + str(s.halt_reason)
        else:
            w, hold = self.rule.ask(decide, s, i, at, self.tickers)
            policy = [float(x) for x in w]
            w, why = limit_weights(w, s.weights(), limits, s.day_loss_stop)
        if hold:
            w = np.zeros(n)
        targets = self.rule.bound(w)
        order = {
            "bar": at,
            "policy_weights": policy,
            "targets": list(targets),
            "hold": hold,
            "reason": "hold: keep the shares" if hold else why,
            "model_id": s.active_model_id,
            "fills_at": "next bar " + self.rule.fill_price.removeprefix("next_"),
        }
        s = dataclasses.replace(
            s,
            pending_weights=targets,
            pending_hold=hold,
            pending_decided_at=at,
            bars_processed=s.bars_processed + 1,
        )
        return s, order


def _book(s: AccountState) -> Book:
    """The account's money and holdings, as the settlement books them."""
    return Book(s.granularity, s.cash_cents, s.exact_cash, s.shares)


# ---------------------------------------------------------------------------------------
# Rules: one asset's target position, N assets' target weights
# ---------------------------------------------------------------------------------------
class TargetPosition:
    """One asset (N = 1) as the single-asset environment trades it, its closed-form fast path:
    the feed is a price table (a sorted, unique, tz-naive DatetimeIndex with Open and Close);
    ``decide(history, state)`` returns a target position (fraction of post-cost equity, shorts
    below 0) from the price history up to the bar; the order trades only when the target
    changed, sized by the kernel in closed form (:func:`~..env.execution.execute_order`) and
    filled at the next bar's close or open (``costs.fill_price``); the holding's entry price
    and bars held (the observation's inputs) are updated with the kernel, as the environment
    does. A new account's first bar defaults to the feed's first."""

    long_only = False

    def __init__(self, initial_capital: float, costs: CostModel) -> None:
        self.initial_capital, self.costs, self.fill_price = initial_capital, costs, costs.fill_price

    @staticmethod
    def record() -> None:
        """A target-position account records no portfolio config."""
        return None

    def execution_rules(self, granularity: str) -> ex.ExecutionRules:
        return execution_rules(self.costs, granularity)

    @staticmethod
    def validate(prices: pd.DataFrame) -> None:
        validate_prices(prices)

    def prepare(
        self, prices: pd.DataFrame, state: AccountState, start, max_bars: int | None
    ) -> tuple[int, int]:
        """Keep the price table's arrays; returns the rows ``first, stop`` to process."""
        self.prices, self.index = prices, prices.index
        self._open = prices["Open"].to_numpy(dtype=float)
        self._close = prices["Close"].to_numpy(dtype=float)
        first = first_bar_to_process(prices.index, state.last_bar, start)
        return first, len(prices) if max_bars is None else min(len(prices), first + max_bars)

    def stamp(self, i: int) -> tuple[str, str]:
        """Bar ``i``'s time stamp (as logged) and calendar date."""
        ts = self.index[i]
        return _iso(ts), ts.date().isoformat()

    def drift_args(self, i: int) -> tuple[pd.DataFrame]:
        return (self.prices.iloc[: i + 1],)

    def prices_at(self, i: int) -> tuple[float, float]:
        """Bar ``i``'s Open and Close; prices that are not finite and positive are refused."""
        open_, close = float(self._open[i]), float(self._close[i])
        if not (math.isfinite(open_) and math.isfinite(close) and open_ > 0 and close > 0):
            raise PriceDataError(
                f"prices: bar {self.stamp(i)[0]} has Open={open_!r}, Close={close!r}; prices must be "
                "finite and positive. Fix the source data; nothing was traded for this bar."
            )
        return open_, close

    def bar_prices(self, i: int) -> tuple[list[float], list[float], tuple[float, ...]]:
        """The fill's reference prices (Close or Open, as ``fill_price`` says), the mark's
        closes and the closes as logged."""
        open_, close = self.prices_at(i)
        return [close if self.fill_price == "next_close" else open_], [close], (close,)

    def opens(self, i: int) -> dict[str, list[float]]:
        return {"opens": [float(self._open[i])]}

    @staticmethod
    def order(s: AccountState, i: int, ref: list[float], rules: ex.ExecutionRules):
        """The pending target's traded shares, in closed form, when it differs from the held
        one (then the new held target), and no band (``False``)."""
        target = None if s.pending_weights is None else s.pending_weights[0]
        if target is None or target == s.held_weights[0]:
            return {}, [0.0], False
        delta = ex.execute_order(SCALAR, rules, target, s.cash, float(s.shares[0]), ref[0])[0]
        return {"held_weights": (target,)}, [delta], False

    def after_fill(self, s: AccountState, booked: list[dict[str, Any]], ref: list[float]) -> dict[str, Any]:
        """The holding's entry price and bars held after the fill (the kernel's rule)."""
        delta, fill = (booked[0]["shares"], booked[0]["fill_price"]) if booked else (0.0, ref[0])
        _, entry, held = ex.position_after(
            SCALAR, float(s.shares[0]), float(delta), fill, s.entry_price[0], s.bars_held[0]
        )
        return {"entry_price": (entry,), "bars_held": (held,)}

    def ask(self, decide: Decide, s: AccountState, i: int, at: str, tickers) -> tuple[np.ndarray, bool]:
        """The decider's target position as a finite number, or a :class:`PolicyOutputError`."""
        raw = decide(self.prices.iloc[: i + 1], s)
        try:
            target = float(raw)
        except (TypeError, ValueError) as exc:
            raise PolicyOutputError(
                f"decision at bar {at} returned {raw!r}, not a number; nothing was traded."
            ) from exc
        if not math.isfinite(target):
            raise PolicyOutputError(
                f"decision at bar {at} returned {target!r}; a target position must "
                "be finite. Check the policy and its features; nothing was traded."
            )
        return np.array([target]), False

    @staticmethod
    def bound(w: np.ndarray) -> tuple[float, ...]:
        return tuple(float(x) for x in w)


class TargetWeights:
    """N >= 1 tickers as the portfolio environment trades them: the feed is a
    :class:`~..panel.PortfolioPanel` (dates x tickers closes plus the raw feature
    panel), ``decide(obs, row)`` gets the (1, obs_dim) observation of a one-lane
    :class:`~..env.portfolio.PortfolioCore` at feed row ``row`` and returns (1, N) weights, or
    ``(weights, hold)``; the weights fill at the next bar's close with the core's joint post-cost
    sizing (its band and bounds); a whole-share account truncates each resulting holding toward
    zero (the kernel's whole-share rule). ``config``: the
    :class:`~..env.config.EnvConfig` the decider was trained and backtested with
    (costs, window, capital, long-only / gross bound, band), recorded by the account. A new
    account's first bar defaults to row ``window - 1``, the first with a full feature window,
    as the replay. The feed is checked before anything is written: tickers equal to the
    account's (reordered if needed), dates sorted and unique, every listed ticker priced on
    every bar up to the last one processed, and the closes of the account's last bar unchanged.
    """

    fill_price = "next_close"

    def __init__(self, config: EnvConfig) -> None:
        self.config = config.replace(episode_length=None, device="cpu")
        self.initial_capital = float(self.config.initial_capital)
        self.long_only = self.config.long_only

    def record(self) -> dict[str, Any]:
        return _config_record(self.config)

    def execution_rules(self, granularity: str) -> ex.ExecutionRules:
        return self.config.rules

    @staticmethod
    def validate(feed: PortfolioPanel) -> None:
        """The feed's type, checked before the account is opened."""
        if not isinstance(feed, PortfolioPanel):
            raise PortfolioFeedError(
                f"the portfolio feed must be a PortfolioPanel (closes and raw features), got {type(feed)}"
            )

    def prepare(
        self, feed: PortfolioPanel, state: AccountState, start, max_bars: int | None
    ) -> tuple[int, int]:
        """Check ``feed`` and build the core; returns the rows ``first, stop`` to process."""
        feed = self._check_feed_tickers(feed, state)
        first = self._first_bar(feed, state, start)
        stop = feed.n_bars if max_bars is None else min(feed.n_bars, first + max_bars)
        self.feed, self.tickers = feed, state.tickers
        if first < stop:
            self._check_feed_prices(feed, state, first, stop)
            self.core = self._core(feed, stop)
        return first, stop

    def stamp(self, i: int) -> tuple[str, str]:
        """Feed row ``i``'s time stamp (as logged) and calendar date."""
        return _iso(self.feed.dates[i]), self.feed.dates[i].date().isoformat()

    def drift_args(self, i: int) -> tuple[PortfolioPanel, int]:
        return self.feed, i

    def bar_prices(self, i: int) -> tuple[list[float], list[float], tuple[float | None, ...]]:
        """The fill's reference prices and the mark's closes (this close; 1.0 where not listed,
        as the core) and the closes as logged (null where not listed)."""
        ref = [float(x) for x in self.core.close[i]]
        return ref, ref, tuple(_num(x) for x in self.feed.close[i])

    @staticmethod
    def opens(i: int) -> dict[str, Any]:
        return {}

    def order(self, s: AccountState, i: int, ref: list[float], rules: ex.ExecutionRules):
        """The traded shares of the pending order at this close and whether the band was
        ignored: the core's joint post-cost sizing (``PortfolioCore.size_orders``, its band and
        bounds); for whole shares the kernel's rule (each resulting holding truncated toward zero)."""
        if s.pending_weights is None:
            return {}, [0.0] * len(s.shares), False
        sh = torch.tensor([s.shares], dtype=torch.float64)
        cash = torch.tensor([s.cash], dtype=torch.float64)
        w = torch.tensor([s.pending_weights], dtype=torch.float64)
        hold = torch.tensor([True]) if s.pending_hold else None
        c = torch.tensor([ref], dtype=torch.float64)
        delta, off = self.core.size_orders(w, cash, sh, c, hold)
        if not s.fractional:
            delta = torch.trunc(sh + delta) - sh
        return {}, [float(x) for x in delta[0]], bool(off.any())

    @staticmethod
    def after_fill(s: AccountState, booked: list[dict[str, Any]], ref: list[float]) -> dict[str, Any]:
        return {}

    def ask(self, decide: Decider, s: AccountState, i: int, at: str, tickers) -> tuple[np.ndarray, bool]:
        """The decider's weights on the core's observation at row ``i``, as (N,) finite weights
        within the bounds, and a hold flag; errors name the ticker and the date, and nothing of
        the bar is written."""
        core = self.core
        core.t = torch.tensor([i], dtype=torch.int64)
        core.cash = torch.tensor([s.cash], dtype=torch.float64)
        core.shares = torch.tensor([s.shares], dtype=torch.float64)
        core.equity = torch.tensor([s.equity], dtype=torch.float64)
        with torch.no_grad():
            out = decide(core.observe(), i)
        n, hold = len(tickers), False
        if isinstance(out, tuple):
            out, h = out
            h = np.asarray(h.detach().cpu() if isinstance(h, torch.Tensor) else h, dtype=bool).reshape(-1)
            if h.shape != (1,):
                raise PortfolioWeightsError(
                    f"the decider returned a hold mask of shape {h.shape} on {show(at)}; expected (1,)"
                )
            hold = bool(h[0])
        w = np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out, dtype=np.float64)
        if w.size != n:
            raise PortfolioWeightsError(
                f"the decider returned weights of shape {w.shape} on {show(at)}; expected (1, {n}) for "
                f"tickers {list(tickers)}. Nothing was traded for this bar."
            )
        w = w.reshape(n)
        if hold:
            return w, True
        for j, t in enumerate(tickers):
            if not math.isfinite(w[j]):
                raise PortfolioWeightsError(
                    f"the decider's weight for ticker {t!r} on {show(at)} is {w[j]}; weights must be "
                    "finite. Check the policy and its features; nothing was traded for this bar."
                )
        tradable = core.tradable[i].numpy()
        for j, t in enumerate(tickers):
            if self.long_only and w[j] < 0:
                raise PortfolioWeightsError(
                    f"the decider's weight for ticker {t!r} on {show(at)} is {w[j]} < 0; a long-only "
                    "account needs weights >= 0. Nothing was traded for this bar."
                )
            if w[j] != 0 and not tradable[j]:
                raise PortfolioWeightsError(
                    f"the decider targets weight {w[j]} for ticker {t!r} on {show(at)}, but it has no price "
                    "yet (not listed); its weight must be 0. Nothing was traded for this bar."
                )
        total = float(w.sum() if self.long_only else np.abs(w).sum())
        bound = 1.0 if self.long_only else self.config.gross_leverage
        if total > bound * (1 + 1e-9):
            what = "sum(w) <= 1 (long only)" if self.long_only else f"sum(|w|) <= {bound}"
            top = tickers[int(np.argmax(np.abs(w)))]
            raise PortfolioWeightsError(
                f"the decider's weights on {show(at)} add up to {total} (largest: ticker {top!r}); "
                f"they must satisfy {what}. Nothing was traded for this bar."
            )
        return w, False

    def bound(self, w: np.ndarray) -> tuple[float, ...]:
        """The targets as the core bounds them (as the replay, then its step)."""
        core = self.core
        wt = core.check_weights(core.check_weights(torch.as_tensor(w[None, :])))
        return tuple(float(x) for x in wt[0])

    def _check_feed_tickers(self, feed: PortfolioPanel, state: AccountState) -> PortfolioPanel:
        missing = [t for t in state.tickers if t not in feed.tickers]
        extra = [t for t in feed.tickers if t not in state.tickers]
        if missing or extra:
            after = feed.dates if state.last_bar is None else feed.dates[feed.dates > state.last_bar]
            first = show(_iso(after[0])) if len(after) else f"the bar after {show(state.last_bar)}"
            held = {t: state.holdings()[t] for t in missing if state.holdings()[t]}
            raise PortfolioFeedError(
                f"the feed's tickers differ from the account's: missing {missing} (held: {held}) on "
                f"{first}, not in the account {extra}. Feed exactly the account's tickers "
                f"{list(state.tickers)}; nothing was traded."
            )
        if feed.tickers != state.tickers:
            feed = feed.select(state.tickers)
        dates = feed.dates
        if dates.tz is not None or not dates.is_monotonic_increasing or not dates.is_unique:
            raise PortfolioFeedError(
                "the feed's dates must be tz-naive, sorted and unique; sort and de-duplicate the feed"
            )
        return feed

    def _first_bar(self, feed: PortfolioPanel, state: AccountState, start) -> int:
        W = self.config.window
        if state.last_bar is not None:
            at = pd.Timestamp(state.last_bar)
            pos = int(feed.dates.searchsorted(at))
            if pos >= feed.n_bars or feed.dates[pos] != at:
                raise PortfolioFeedError(
                    f"the feed has no bar on {show(state.last_bar)}, the account's last processed bar; the "
                    "pending order fills at the bar after it. Feed a history that includes it."
                )
            return pos + 1
        first = W - 1 if start is None else int(feed.dates.searchsorted(pd.Timestamp(start), side="left"))
        if first < W - 1:
            raise PortfolioFeedError(
                f"the first bar {show(_iso(feed.dates[first]))} needs {W - 1} feed rows of history "
                f"before it (portfolio window {W}); the feed has {first}. Start later or feed more history."
            )
        return first

    def _check_feed_prices(self, feed: PortfolioPanel, state: AccountState, first: int, stop: int):
        close = feed.close[:stop]
        finite = np.isfinite(close)
        for j, t in enumerate(state.tickers):
            col = finite[:, j]
            held = state.shares[j] != 0
            listed = int(np.argmax(col)) if col.any() else stop
            if held:  # a held ticker was priced at the account's last bar, row first - 1
                listed = min(listed, first - 1)
            gap = np.nonzero(~col[listed:])[0]
            if len(gap):
                row = listed + int(gap[0])
                why = f"holds {state.shares[j]} shares of it" if held else "saw it listed earlier"
                raise PortfolioFeedError(
                    f"ticker {t!r} is missing from the feed on {show(_iso(feed.dates[row]))} (close "
                    f"{close[row, j]}): the account {why}, so every later bar needs its close. Fix the "
                    f"feed; nothing was processed in this run (the account stays at {show(state.last_bar)})."
                )
            if (close[listed:, j] <= 0).any():
                row = listed + int(np.argmax(close[listed:, j] <= 0))
                raise PortfolioFeedError(
                    f"ticker {t!r} has close {close[row, j]} on {show(_iso(feed.dates[row]))}; prices "
                    "must be positive. Fix the feed; nothing was traded."
                )
        if state.last_close is not None:
            row = first - 1
            for j, t in enumerate(state.tickers):
                was, now = state.last_close[j], _num(close[row, j])
                if was != now and not (was is not None and now is not None and math.isclose(was, now)):
                    raise PortfolioFeedError(
                        f"ticker {t!r} closed at {was} on {show(state.last_bar)} when the account processed "
                        f"that bar, but the feed now says {now}: the history was revised. Trade on the "
                        "feed the account was marked with (or start a new account)."
                    )

    def _core(self, feed: PortfolioPanel, stop: int) -> PortfolioCore:
        """A one-lane core over feed rows ``0 .. stop-1`` (plus one copy of the last row, never
        read: the core needs a bar after its last decision). A ticker with no close at all yet
        gets a placeholder price and is marked not tradable, as the core does before a listing."""
        close = np.concatenate([feed.close[:stop], feed.close[stop - 1 : stop]])
        feats = np.concatenate([feed.features[:stop], feed.features[stop - 1 : stop]])
        unlisted = ~np.isfinite(close).any(axis=0)
        close = np.where(unlisted[None, :], 1.0, close)
        core = PortfolioCore(close, feats, self.tickers, self.config, num_envs=1, seed=0, autoreset=False)
        if unlisted.any():
            core.set_untradable(unlisted)
        core.reset(starts=min(stop - 1, core.last_bar - 1))
        return core


# ---------------------------------------------------------------------------------------
# Helpers and the ledger
# ---------------------------------------------------------------------------------------
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


def portfolio_ledger(store: Any) -> pd.DataFrame:
    """One row per processed bar (index: date): equity, cash, cost, commission, slippage, borrow,
    traded_notional (float dollars, as :meth:`~..portfolio.replay.PortfolioRun.frame`), cents,
    drawdown, then ``shares:<ticker>`` and ``weight:<ticker>`` per ticker."""
    state = store.load()
    marks = store.read_log("equity", state)
    money = ["equity", "cash", "cost", "commission", "slippage", "borrow", "traded_notional"]
    cents = ["equity_cents", "cash_cents", "commission_cents", "slippage_cents", "borrow_cents"]
    rows = []
    for m in marks:
        row = {k: m[k] for k in money + cents + ["drawdown"]}
        row.update({f"shares:{t}": x for t, x in zip(state.tickers, m["shares"], strict=True)})
        row.update({f"weight:{t}": x for t, x in zip(state.tickers, m["weights"], strict=True)})
        rows.append(row)
    index = pd.DatetimeIndex([pd.Timestamp(m["bar"]) for m in marks], name="date")
    return pd.DataFrame(rows, index=index)
