"""One paper account for N >= 1 assets: each new bar becomes one fill, one mark, the risk checks
and one decision, committed as one unit.

What: :class:`PaperAccount` processes the bars after an account's last processed bar into one
account folder (:class:`~.state.AccountStore`, or the Kedro node's in-memory
:class:`~.state.StagedAccount`); :meth:`PaperAccount._process_bar` lists a bar's steps in the order
of its timeline, for every N: model switch, day roll, the pending order filled and the account
marked by the one settlement (:func:`~.settlement.settle_bar`, the execution kernel's), the drift
alerts, the risk checks (:mod:`.risk`) and the decision, then one commit. What depends on the
environment the policy was trained in (how a decision becomes traded shares, when it fills, what
the decider sees) is the account's front end: :class:`InstrumentFrontEnd` (one instrument's Open /
Close prices, a target position of post-cost equity sized in closed form, fills at the next close
or open, as ``env.core``) or :class:`UniverseFrontEnd` (a :class:`~..portfolio.panel.PortfolioPanel`
feed of N tickers, target weights sized jointly by a one-lane
:class:`~..env.portfolio.PortfolioCore`, fills at the next close, as the portfolio replay). Build
one with :meth:`PaperAccount.instrument` or :meth:`PaperAccount.universe`. The mode guard,
reconciliation of the logs with the state and clearing a halt are in :mod:`.operations`;
:func:`portfolio_ledger` reads a universe account's per-bar ledger.

Why: a paper account must trade exactly as the agents were trained and evaluated (sizes, fills
and costs come from the execution kernel, ``env.execution``) and decide on nothing after bar t;
the bar's timeline, halts and journal must mean the same for one asset and for twenty. Timing,
costs, share granularity, risk limits, files and errors: docs/paper_trading.md.
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
from ..params.base import ParameterError
from ..portfolio.panel import PortfolioPanel
from .operations import reconcile
from .risk import RiskLimits, limit_weights, risk_checks, roll_day, show, switch_model
from .settlement import Book, settle_bar
from .state import INSTRUMENT, AccountState, AccountStateError, RunSummary, check_state, new_account

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


def new_portfolio_account(
    tickers: Sequence[str],
    config: EnvConfig,
    granularity: str = "whole",
    active_model_id: str | None = None,
) -> AccountState:
    """A fresh universe account holding ``config.initial_capital`` in cash over ``tickers``; its
    tickers, granularity and config (costs, window, bounds, band) are fixed for its lifetime."""
    if granularity not in ex.GRANULARITIES:
        raise ParameterError(
            f"portfolio account granularity must be one of {list(ex.GRANULARITIES)}, got {granularity!r}"
        )
    tickers = tuple(str(t) for t in tickers)
    if not tickers or len(set(tickers)) != len(tickers):
        raise PortfolioInputError(f"a portfolio account needs distinct tickers, got {list(tickers)}")
    return new_account(
        float(config.initial_capital), active_model_id, granularity, tickers, _config_record(config)
    )


def _config_record(config: EnvConfig) -> dict[str, Any]:
    return {k: getattr(config, k) for k in CONFIG_FIELDS}


# ---------------------------------------------------------------------------------------
# The account
# ---------------------------------------------------------------------------------------
class PaperAccount:
    """Trades a decider into one account folder, one committed unit per bar, for N >= 1 assets.

    ``store``: an :class:`~.state.AccountStore` (a folder) or a :class:`~.state.StagedAccount`;
    ``front``: the front end (:class:`InstrumentFrontEnd` or :class:`UniverseFrontEnd`; build the
    account with :meth:`instrument` or :meth:`universe`); ``limits``: :class:`~.risk.RiskLimits`;
    ``drift_check``: the drift monitor's alerts at a bar (the front end says what it is given:
    the price history up to the bar, or the feed and its row), recorded each bar; with
    ``halt_on_drift`` an alert halts the account.
    """

    def __init__(
        self,
        store: Any,
        front: InstrumentFrontEnd | UniverseFrontEnd,
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
        """An account over one instrument's Open / Close prices (N = 1: a universe of one
        ``ticker``), deciding a target position with ``decide(history, state)``; see
        :class:`InstrumentFrontEnd`. ``drift_check(history)``."""
        front = InstrumentFrontEnd(initial_capital, costs, granularity, ticker)
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
        """An account over a universe's feed of N >= 1 tickers, deciding target weights with
        ``decide(obs, row)``; see :class:`UniverseFrontEnd`. ``drift_check(feed, row)``."""
        front = UniverseFrontEnd(tickers, config, granularity)
        return cls(store, front, limits=limits, drift_check=drift_check, halt_on_drift=halt_on_drift)

    # -- accessors -----------------------------------------------------------------------
    def state(self) -> AccountState:
        return self.store.load()

    def log(self, name: str) -> list[dict[str, Any]]:
        """Committed records of one log: ``orders``, ``trades``, ``equity`` or ``events``."""
        return self.store.read_log(name, self.store.load())

    def ledger(self) -> pd.DataFrame:
        """A universe account's per-bar ledger (:func:`portfolio_ledger`)."""
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
        bars are history the decider may look at); the front end's default otherwise. The feed
        is checked before anything is written (see the front end); an account folder's logs are
        reconciled with its state first (:func:`~.operations.reconcile`)."""
        self.front.validate(feed)
        with self.store.locked():
            state = self.front.open(self.store, model_id)
            if hasattr(self.store, "read_log"):  # a folder, not a staged batch
                reconcile(self.store)
            first, stop = self.front.prepare(feed, state, start, max_bars)
            if first >= stop:
                return RunSummary(0, None, state.last_bar, state)
            first_bar = None
            for i in range(first, stop):
                if i == first:  # this run opens the account's newest session
                    state = dataclasses.replace(state, session_first_bar=self.front.stamp(i)[0])
                state = self._process_bar(state, i, decide, model_id)
                first_bar = first_bar or state.last_bar
            return RunSummary(stop - first, first_bar, state.last_bar, state)

    def _process_bar(self, state: Any, i: int, decide: Any, model_id: str | None) -> Any:
        """Bar ``i``, in the order of its timeline; its log lines and new state are committed
        as one unit (all or nothing, see :mod:`.state`)."""
        front = self.front
        at, day = front.stamp(i)
        s, events = switch_model(state, at, model_id)
        s = roll_day(s, day)
        s, trades, mark = front.fill_and_mark(s, i)
        alerts = front.drift_alerts(self.drift_check, i) if self.drift_check is not None else []
        s, risk_events = risk_checks(s, at, day, self.limits, alerts, self.halt_on_drift)
        s, order = front.decide(s, i, decide, self.limits)
        return self.store.commit(
            s, {"orders": [order], "trades": trades, "equity": [mark], "events": events + risk_events}
        )


# ---------------------------------------------------------------------------------------
# One instrument: Open / Close prices, a target position
# ---------------------------------------------------------------------------------------
class InstrumentFrontEnd:
    """One instrument (N = 1) as the single-asset environment trades it: ``prices`` (a DataFrame
    with a sorted, unique, tz-naive DatetimeIndex and Open / Close columns), ``decide(history,
    state)`` returns a target position (fraction of post-cost equity, shorts below 0) from the
    price history up to the bar; the order trades only when the target changed, sized by the
    kernel in closed form (:func:`~..env.execution.execute_order`) and filled at the next bar's
    close or open (``costs.fill_price``); the holding's entry price and bars held (the
    observation's inputs) are updated with the kernel, as the environment does.

    ``granularity``: ``"whole"`` or ``"fractional"`` shares for a new account; ``None`` (the
    default) means the account's recorded granularity, and ``whole`` for a new account. An
    explicit value that differs from an existing account's is refused. ``ticker``: the account's
    one ticker (:data:`~.state.INSTRUMENT` by default, as a schema-1 instrument account reads).
    """

    def __init__(
        self,
        initial_capital: float,
        costs: CostModel,
        granularity: str | None = None,
        ticker: str = INSTRUMENT,
    ) -> None:
        if granularity is not None and granularity not in ex.GRANULARITIES:
            raise ParameterError(
                f"granularity must be one of {list(ex.GRANULARITIES)} (or None for the account's "
                f"own), got {granularity!r}"
            )
        self.initial_capital = initial_capital
        self.costs = costs
        self.granularity = granularity
        self.ticker = str(ticker)

    def open(self, store: Any, model_id: str | None) -> AccountState:
        """The committed account; a folder without one gets a new, flat account holding
        ``initial_capital`` in cash. Another granularity than the recorded one is refused."""
        if not store.exists():
            store.initialize(
                new_account(self.initial_capital, model_id, self.granularity or "whole", (self.ticker,))
            )
        state = store.load()
        if state.config is not None or state.tickers != (self.ticker,):
            raise AccountStateError(
                f"{store.folder}: the account trades the universe {list(state.tickers)} "
                f"({'target weights of a portfolio config' if state.config else 'one instrument'}), "
                f"not the instrument {self.ticker!r}; use a new account folder. Nothing was traded."
            )
        if self.granularity is not None and state.granularity != self.granularity:
            raise AccountStateError(
                f"{store.folder}: the account trades {state.granularity} shares (recorded "
                f"when it was created) and cannot switch to {self.granularity} shares; use a new "
                "account folder for another granularity. Nothing was traded."
            )
        self._rules = execution_rules(self.costs, state.granularity)
        return state

    @staticmethod
    def validate(prices: pd.DataFrame) -> None:
        """The price table's shape, checked before the account is opened (:func:`validate_prices`)."""
        validate_prices(prices)

    def prepare(
        self, prices: pd.DataFrame, state: AccountState, start, max_bars: int | None
    ) -> tuple[int, int]:
        """Keep the price table's arrays; returns the rows ``first, stop`` to process."""
        self.prices = prices
        self._open = prices["Open"].to_numpy(dtype=float)
        self._close = prices["Close"].to_numpy(dtype=float)
        first = first_bar_to_process(prices.index, state.last_bar, start)
        return first, len(prices) if max_bars is None else min(len(prices), first + max_bars)

    def stamp(self, i: int) -> tuple[str, str]:
        """Bar ``i``'s time stamp (as logged) and calendar date."""
        ts = self.prices.index[i]
        return _iso(ts), ts.date().isoformat()

    def _bar(self, i: int) -> _Bar:
        """Bar ``i``; prices that are not finite and positive are refused."""
        at, day = self.stamp(i)
        open_, close = float(self._open[i]), float(self._close[i])
        if not (math.isfinite(open_) and math.isfinite(close) and open_ > 0 and close > 0):
            raise PriceDataError(
                f"prices: bar {at} has Open={open_!r}, Close={close!r}; prices must be finite "
                "and positive. Fix the source data; nothing was traded for this bar."
            )
        return _Bar(at, day, open_, close)

    def drift_alerts(self, drift_check: DriftCheck, i: int) -> list[dict[str, Any]]:
        """The drift monitor's alerts on the price history up to bar ``i``."""
        return drift_check(self.prices.iloc[: i + 1])

    def fill_and_mark(self, s: AccountState, i: int) -> tuple[AccountState, list[dict], dict[str, Any]]:
        return self._fill_and_mark(s, self._bar(i))

    def _fill_and_mark(self, s: AccountState, bar: _Bar) -> tuple[AccountState, list[dict], dict[str, Any]]:
        """Fill the order decided at the previous bar's close at this bar's reference price
        (``Close`` or ``Open``, as ``environment.fill_price`` says) and mark at the close, in one
        settlement (:func:`~.settlement.settle_bar`: the kernel's fill, costs, cash, borrow and
        equity; a short pays borrow on its notional, as in the env); then update the holding's
        entry price and bars held (the observation's inputs) with the kernel, as the env does.
        Returns the state, the bar's trades and its equity mark."""
        ref = bar.close if self.costs.fill_price == "next_close" else bar.open
        target = None if s.pending_weights is None else s.pending_weights[0]
        delta, decided_at = 0.0, s.pending_decided_at
        if target is not None and target != s.held_weights[0]:  # trade only when the target changed
            s = dataclasses.replace(s, held_weights=(target,))
            delta = ex.execute_order(SCALAR, self._rules, target, s.cash, float(s.shares[0]), ref)[0]
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
            SCALAR, float(s.shares[0]), float(delta), fill, s.entry_price[0], s.bars_held[0]
        )
        s = dataclasses.replace(
            s,
            pending_weights=None,
            pending_decided_at=None,
            entry_price=(entry,),
            bars_held=(held_bars,),
            cash_cents=book.cash_cents,
            exact_cash=book.exact_cash,
            shares=book.shares,
            equity_cents=marked["equity_cents"],
        )
        exact = {}
        if s.fractional:
            exact = {"cash": marked["cash"], "equity": marked["equity"], "borrow": marked["borrow"]}
            s = dataclasses.replace(s, exact_equity=marked["equity"])
        s = dataclasses.replace(
            s, peak_equity_cents=max(s.peak_equity_cents, s.equity_cents), last_close=(bar.close,)
        )
        mark = {
            "bar": bar.at,
            "open": bar.open,
            "close": bar.close,
            "cash_cents": s.cash_cents,
            "shares": s.shares[0],
            "equity_cents": s.equity_cents,
            "position": s.weights()[0],
            "peak_equity_cents": s.peak_equity_cents,
            "drawdown": s.drawdown,
            "borrow_cents": marked["borrow_cents"],
            **exact,
        }
        return s, trades, mark

    def decide(
        self, s: AccountState, i: int, decide: Decide, limits: RiskLimits
    ) -> tuple[AccountState, dict[str, Any]]:
        return self._decide(s, self._bar(i), self.prices.iloc[: i + 1], decide, limits)

    def _decide(
        self, s: AccountState, bar: _Bar, history: pd.DataFrame, decide: Decide, limits: RiskLimits
    ) -> tuple[AccountState, dict[str, Any]]:
        """Exactly one decision for this bar: flat when halted, else the policy's target within
        the risk limits. It stays pending and fills at the next bar. Returns the order record."""
        if s.halted:
            policy_target, target, why = None, 0.0, "halted: " + str(s.halt_reason)
        else:
            policy_target = _as_target(decide(history, s), bar.at)
            limited, why = limit_weights([policy_target], list(s.weights()), limits, s.day_loss_stop)
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
            pending_weights=(target,),
            pending_decided_at=bar.at,
            last_bar=bar.at,
            bars_processed=s.bars_processed + 1,
        )
        return s, order


def _book(s: AccountState) -> Book:
    """The account's money and holdings, as the settlement books them."""
    return Book(s.granularity, s.cash_cents, s.exact_cash, s.shares)


@dataclass(frozen=True)
class _Bar:
    """One bar of an instrument account: time stamp (as logged), calendar date, Open and Close."""

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


# ---------------------------------------------------------------------------------------
# A universe: a PortfolioPanel feed, target weights
# ---------------------------------------------------------------------------------------
class UniverseFrontEnd:
    """N >= 1 tickers as the portfolio environment trades them: the feed is a
    :class:`~..portfolio.panel.PortfolioPanel` (dates x tickers closes plus the raw feature
    panel), ``decide(obs, row)`` gets the (1, obs_dim) observation of a one-lane
    :class:`~..env.portfolio.PortfolioCore` at feed row ``row`` and returns (1, N) weights, or
    ``(weights, hold)``; the weights fill at the next bar's close with the core's joint post-cost
    sizing (its band and bounds); a whole-share account truncates each resulting holding toward
    zero (the kernel's whole-share rule). ``config``: the
    :class:`~..env.config.EnvConfig` the decider was trained and backtested with
    (costs, window, capital, long-only / gross bound, band); an existing account whose recorded
    tickers, granularity or config differ is refused. A new account's first bar defaults to row
    ``window - 1``, the first with a full feature window, as the replay. The feed is checked
    before anything is written: tickers equal to the account's (reordered if needed), dates
    sorted and unique, every listed ticker priced on every bar up to the last one processed, and
    the closes of the account's last bar unchanged.
    """

    def __init__(self, tickers: Sequence[str], config: EnvConfig, granularity: str = "whole") -> None:
        if granularity not in ex.GRANULARITIES:
            raise ParameterError(f"granularity must be one of {list(ex.GRANULARITIES)}, got {granularity!r}")
        self.tickers = tuple(str(t) for t in tickers)
        self.config = config.replace(episode_length=None, device="cpu")
        self.granularity = granularity
        self.rules = self.config.rules

    def open(self, store: Any, model_id: str | None) -> AccountState:
        """The committed account (a new one holding ``config.initial_capital`` in cash)."""
        return self._open_account(store, model_id)

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
        self.feed = feed
        if first < stop:
            self._check_feed_prices(feed, state, first, stop)
            self.core = self._core(feed, stop)
        return first, stop

    def stamp(self, i: int) -> tuple[str, str]:
        """Feed row ``i``'s time stamp (as logged) and calendar date."""
        return _iso(self.feed.dates[i]), self.feed.dates[i].date().isoformat()

    def drift_alerts(self, drift_check: DriftCheck, i: int) -> list[dict[str, Any]]:
        """The drift monitor's alerts at feed row ``i``."""
        return drift_check(self.feed, i)

    def fill_and_mark(self, s: AccountState, i: int):
        return self._fill_and_mark(s, self.core, self.feed, i, self.stamp(i)[0])

    def decide(self, s: AccountState, i: int, decide: Decider, limits: RiskLimits):
        return self._decide(s, self.core, self.feed, i, self.stamp(i)[0], decide, limits)

    def _open_account(self, store: Any, model_id: str | None) -> AccountState:
        if not store.exists():
            store.initialize(new_portfolio_account(self.tickers, self.config, self.granularity, model_id))
        state = store.load()
        if state.config is None:
            raise AccountStateError(
                f"{store.folder}: an instrument paper account (ticker {list(state.tickers)}, target "
                f"positions of Open / Close prices) cannot trade the universe {list(self.tickers)}; "
                "use a new account folder. Nothing was traded."
            )
        problems = []
        if state.tickers != self.tickers:
            problems.append(f"tickers {list(state.tickers)} (asked for {list(self.tickers)})")
        if state.granularity != self.granularity:
            problems.append(f"{state.granularity} shares (asked for {self.granularity})")
        want = _config_record(self.config)
        if state.config != want:
            diff = {k: (state.config.get(k), want[k]) for k in want if state.config.get(k) != want[k]}
            problems.append(f"config (recorded, asked) {diff}")
        if problems:
            raise AccountStateError(
                f"{store.folder}: the account was created with {'; '.join(problems)}; these never "
                "change for an account. Use a new account folder. Nothing was traded."
            )
        check_state(state, source=str(store.folder))
        return state

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

    def _fill_and_mark(self, s, core, feed, i, at):
        """The pending order (decided at the previous bar) filled at this bar's close with the
        core's joint sizing, booked and marked at the close by the one settlement
        (:mod:`.settlement`: the kernel's fill prices, costs, cash and borrow)."""
        c = core.close[i : i + 1]  # (1, N) float64: this close (1.0 where not listed, as the core)
        ref = [float(x) for x in c[0]]
        delta, band_off = self._orders(s, core, c)
        w = s.pending_weights or ()
        long_order = self.config.long_only or (min(w, default=0.0) >= 0 and sum(w) <= 1)
        book, booked, totals, marked = settle_bar(
            _book(s), self.rules, ref, delta, ref, long_order=long_order
        )
        closes = tuple(_num(x) for x in feed.close[i])
        trades = [
            {
                "bar": at,
                "decided_at": s.pending_decided_at,
                "ticker": self.tickers[t["asset"]],
                "side": "buy" if t["shares"] > 0 else "sell",
                "shares": t["shares"],
                "reference_price": ref[t["asset"]],
                "target_weight": s.pending_weights[t["asset"]],
                **{k: v for k, v in t.items() if k not in ("asset", "shares")},
            }
            for t in booked
        ]
        cents = {
            "commission_cents": totals["commission_cents"],
            "slippage_cents": totals["slippage_cents"],
            "borrow_cents": marked["borrow_cents"],
            "traded_notional_cents": totals["traded_notional_cents"],
        }
        if s.fractional:
            money = {
                "paid": totals["paid"],
                "commission": totals["commission"],
                "slippage": totals["slippage"],
                "borrow": marked["borrow"],
                "cost": totals["commission"] + totals["slippage"] + marked["borrow"],
                "traded_notional": totals["traded_notional"],
                "cash": marked["cash"],
                "equity": marked["equity"],
            }
        else:
            money = {k.removesuffix("_cents"): v / 100 for k, v in cents.items()}
            money.update(
                cash=book.cash_cents / 100,
                equity=marked["equity_cents"] / 100,
                cost=(cents["commission_cents"] + cents["slippage_cents"] + cents["borrow_cents"]) / 100,
            )
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
        )
        eq = s.equity
        mark = {
            "bar": at,
            "closes": list(closes),
            "shares": list(s.shares),
            "weights": [
                x * (cl or 0.0) / eq if eq > 0 else 0.0 for x, cl in zip(s.shares, closes, strict=True)
            ],
            "cash_cents": s.cash_cents,
            "equity_cents": s.equity_cents,
            "market_value_cents": marked["market_value_cents"],
            "peak_equity_cents": s.peak_equity_cents,
            "drawdown": s.drawdown,
            "band_off": band_off,
            "filled": s.pending_decided_at,
            **cents,
            **money,
        }
        s = dataclasses.replace(s, pending_weights=None, pending_hold=False, pending_decided_at=None)
        return s, trades, mark

    def _orders(self, s, core, c) -> tuple[list[float], bool]:
        """The traded shares of the pending order at the close ``c`` and whether the band was
        ignored: the core's joint post-cost sizing (``PortfolioCore.size_orders``, its band and
        bounds); for whole shares the kernel's rule (each resulting holding truncated toward zero)."""
        sh = torch.tensor([s.shares], dtype=torch.float64)
        if s.pending_weights is None:
            return [0.0] * len(self.tickers), False
        cash = torch.tensor([s.cash], dtype=torch.float64)
        w = torch.tensor([s.pending_weights], dtype=torch.float64)
        hold = torch.tensor([True]) if s.pending_hold else None
        delta, off = core.size_orders(w, cash, sh, c, hold)
        if not s.fractional:
            delta = torch.trunc(sh + delta) - sh
        return [float(x) for x in delta[0]], bool(off.any())

    # -- the decision --------------------------------------------------------------------------
    def _decide(self, s, core, feed, i, at, decide, limits):
        """Exactly one decision for this bar: all cash when halted, else the decider's weights
        (validated, then within the risk limits). It fills at the next bar's close."""
        core.t = torch.tensor([i], dtype=torch.int64)
        core.cash = torch.tensor([s.cash], dtype=torch.float64)
        core.shares = torch.tensor([s.shares], dtype=torch.float64)
        core.equity = torch.tensor([s.equity], dtype=torch.float64)
        N = len(self.tickers)
        hold, policy = False, None
        if s.halted:
            w, why = np.zeros(N), "halted: " + str(s.halt_reason)
        else:
            with torch.no_grad():
                out = decide(core.observe(), i)
            w, hold = self._check_weights(out, core, feed, i, at)
            policy = [float(x) for x in w]
            w, why = self._limit(w, s, core, i, limits)
        if hold:
            w = np.zeros(N)
        wt = core.check_weights(core.check_weights(torch.as_tensor(w[None, :])))  # as replay, then step
        targets = tuple(float(x) for x in wt[0])
        order = {
            "bar": at,
            "policy_weights": policy,
            "targets": list(targets),
            "hold": hold,
            "reason": "hold: keep the shares" if hold else why,
            "model_id": s.active_model_id,
            "fills_at": "next bar close",
        }
        s = dataclasses.replace(
            s,
            pending_weights=targets,
            pending_hold=hold,
            pending_decided_at=at,
            bars_processed=s.bars_processed + 1,
        )
        return s, order

    def _check_weights(self, out, core, feed, i, at) -> tuple[np.ndarray, bool]:
        """The decider's output as (N,) finite weights within the bounds and a hold flag; errors
        name the ticker and the date, and nothing of the bar is written."""
        N, tickers = len(self.tickers), self.tickers
        hold = False
        if isinstance(out, tuple):
            out, h = out
            h = np.asarray(h.detach().cpu() if isinstance(h, torch.Tensor) else h, dtype=bool).reshape(-1)
            if h.shape != (1,):
                raise PortfolioWeightsError(
                    f"the decider returned a hold mask of shape {h.shape} on {show(at)}; expected (1,)"
                )
            hold = bool(h[0])
        w = np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out, dtype=np.float64)
        if w.size != N:
            raise PortfolioWeightsError(
                f"the decider returned weights of shape {w.shape} on {show(at)}; expected (1, {N}) for "
                f"tickers {list(tickers)}. Nothing was traded for this bar."
            )
        w = w.reshape(N)
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
            if self.config.long_only and w[j] < 0:
                raise PortfolioWeightsError(
                    f"the decider's weight for ticker {t!r} on {show(at)} is {w[j]} < 0; a long-only "
                    "account needs weights >= 0. Nothing was traded for this bar."
                )
            if w[j] != 0 and not tradable[j]:
                raise PortfolioWeightsError(
                    f"the decider targets weight {w[j]} for ticker {t!r} on {show(at)}, but it has no price "
                    "yet (not listed); its weight must be 0. Nothing was traded for this bar."
                )
        total = float(w.sum() if self.config.long_only else np.abs(w).sum())
        bound = 1.0 if self.config.long_only else self.config.gross_leverage
        if total > bound * (1 + 1e-9):
            what = "sum(w) <= 1 (long only)" if self.config.long_only else f"sum(|w|) <= {bound}"
            top = tickers[int(np.argmax(np.abs(w)))]
            raise PortfolioWeightsError(
                f"the decider's weights on {show(at)} add up to {total} (largest: ticker {top!r}); "
                f"they must satisfy {what}. Nothing was traded for this bar."
            )
        return w, False

    @staticmethod
    def _limit(w: np.ndarray, s, core, i, limits: RiskLimits) -> tuple[np.ndarray, str]:
        """The weights within the risk limits (:func:`~.risk.limit_weights`), against each asset's
        weight at this close."""
        closes = np.nan_to_num(core.close[i].numpy())
        cur = np.asarray(s.shares) * closes / s.equity if s.equity > 0 else np.zeros_like(w)
        return limit_weights(w, cur, limits, s.day_loss_stop)


# ---------------------------------------------------------------------------------------
# Helpers and the universe's ledger
# ---------------------------------------------------------------------------------------
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
