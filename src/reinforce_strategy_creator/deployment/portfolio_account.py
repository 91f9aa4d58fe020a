"""N-asset paper account: a portfolio decider's weights become whole- or fractional-share fills.

What: :class:`PortfolioPaperAccount` processes a :class:`~..portfolio.panel.PortfolioPanel` feed
(dates x tickers closes plus the raw feature panel) bar by bar into one account folder
(:class:`~.state.AccountStore`), each bar committed as one unit (its state a
:class:`~.state.PortfolioAccountState`); :func:`~.operations.reconcile` checks a folder's logs
against its state; :func:`portfolio_ledger` reads the per-bar ledger.

Why: a portfolio paper account must trade exactly as the portfolio agents were validated and
backtested (:func:`~..portfolio.replay.replay_weights`). So the observation is built by a
one-lane :class:`~..env.portfolio.PortfolioCore` over the feed (``PortfolioCore.observe``), the
joint post-cost sizing is the core's own, and fill prices, costs, cash settlement, borrow and
marks are the execution kernel's functions (``env.execution``), called in the core's order: a
fractional account reproduces the replay's ledger; a whole-share account truncates each
resulting holding toward zero (the kernel's whole-share rule) and books integer cents. Crash
safety is the single-asset account's protocol (:mod:`.state`: logs appended with fsync, then
``state.json`` replaced atomically as the one commit point). Timing, granularity, risk limits,
files and errors: docs/paper_trading.md ("One instrument or a universe").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..env import execution as ex
from ..env.portfolio import PortfolioConfig, PortfolioCore, PortfolioInputError
from ..params.base import ParameterError
from ..portfolio.panel import PortfolioPanel
from .operations import reconcile
from .risk import RiskLimits, limit_weights, risk_checks, roll_day, show, switch_model
from .settlement import Book, settle_bar
from .state import (
    AccountStateError,
    PortfolioAccountState,
    RunSummary,
    check_portfolio_state,
)

__all__ = [
    "PortfolioAccountState",
    "PortfolioFeedError",
    "PortfolioPaperAccount",
    "PortfolioWeightsError",
    "new_portfolio_account",
    "portfolio_ledger",
]

#: the PortfolioConfig fields an account records at creation and never changes
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

Decider = Callable[[torch.Tensor, int], object]


class PortfolioFeedError(PortfolioInputError):
    """The feed cannot be traded on: a ticker is absent or has no close, dates break, prices changed."""


class PortfolioWeightsError(PortfolioInputError):
    """The decider returned weights that are not finite or break the bounds (names ticker and date)."""


def new_portfolio_account(
    tickers: Sequence[str],
    config: PortfolioConfig,
    granularity: str = "whole",
    active_model_id: str | None = None,
) -> PortfolioAccountState:
    """A fresh account holding ``config.initial_capital`` in cash over ``tickers``; its tickers,
    granularity and config (costs, window, bounds, band) are fixed for its lifetime."""
    if granularity not in ex.GRANULARITIES:
        raise ParameterError(
            f"portfolio account granularity must be one of {list(ex.GRANULARITIES)}, got {granularity!r}"
        )
    tickers = tuple(str(t) for t in tickers)
    if not tickers or len(set(tickers)) != len(tickers):
        raise PortfolioInputError(f"a portfolio account needs distinct tickers, got {list(tickers)}")
    cap = float(config.initial_capital)
    cents = round(cap * 100)
    exact = cap if granularity == "fractional" else None
    zero: float = 0.0 if granularity == "fractional" else 0
    return PortfolioAccountState(
        tickers=tickers,
        granularity=granularity,
        config=_config_record(config),
        initial_capital_cents=cents,
        cash_cents=cents,
        equity_cents=cents,
        peak_equity_cents=cents,
        day_start_equity_cents=cents,
        shares=(zero,) * len(tickers),
        exact_initial_cash=exact,
        exact_cash=exact,
        exact_equity=exact,
        active_model_id=active_model_id,
    )


def _config_record(config: PortfolioConfig) -> dict[str, Any]:
    return {k: getattr(config, k) for k in CONFIG_FIELDS}


def _book(state: PortfolioAccountState) -> Book:
    """The account's money and holdings, as the settlement books them."""
    return Book(state.granularity, state.cash_cents, state.exact_cash, state.shares)


# ---------------------------------------------------------------------------------------
# The account
# ---------------------------------------------------------------------------------------
def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).isoformat()


def _num(x: float) -> float | None:
    """JSON-safe float: NaN (ticker not listed yet) as null."""
    return None if not math.isfinite(x) else float(x)


class PortfolioPaperAccount:
    """Trades a weight decider over N tickers into one account folder, one committed unit per bar.

    ``store``: an :class:`~.state.AccountStore` (a folder) or a :class:`~.state.StagedAccount`
    (the Kedro node's in-memory batch); ``tickers``: the account's tickers, in the decider's order;
    ``config``: the :class:`~..env.portfolio.PortfolioConfig` the decider was trained and
    backtested with (costs, window, capital, long-only / gross bound, band); ``granularity``:
    ``"whole"`` (default) or ``"fractional"`` shares; ``limits``: :class:`~.risk.RiskLimits`
    (``max_position_fraction`` caps each asset's weight); ``drift_check(feed, row)``: the drift
    monitor's alerts at a feed row (recorded; with ``halt_on_drift`` an alert halts the account).
    An existing account whose recorded tickers, granularity or config differ is refused.
    """

    def __init__(
        self,
        store: Any,
        tickers: Sequence[str],
        config: PortfolioConfig,
        *,
        granularity: str = "whole",
        limits: RiskLimits | None = None,
        drift_check: Callable[[PortfolioPanel, int], list[dict[str, Any]]] | None = None,
        halt_on_drift: bool = False,
    ) -> None:
        if granularity not in ex.GRANULARITIES:
            raise ParameterError(f"granularity must be one of {list(ex.GRANULARITIES)}, got {granularity!r}")
        self.store = store
        self.tickers = tuple(str(t) for t in tickers)
        self.config = dataclasses.replace(config, episode_length=None, device="cpu")
        self.granularity = granularity
        self.limits = limits or RiskLimits()
        self.drift_check = drift_check
        self.halt_on_drift = halt_on_drift
        self.rules = self.config.rules

    # -- accessors -----------------------------------------------------------------------
    def state(self) -> PortfolioAccountState:
        return self.store.load()

    def log(self, name: str) -> list[dict[str, Any]]:
        """Committed records of one log: ``orders``, ``trades``, ``equity`` or ``events``."""
        return self.store.read_log(name, self.store.load())

    def ledger(self) -> pd.DataFrame:
        return portfolio_ledger(self.store)

    # -- running ---------------------------------------------------------------------------
    def run(
        self,
        feed: PortfolioPanel,
        decide: Decider,
        *,
        model_id: str | None = None,
        start: pd.Timestamp | str | None = None,
        max_bars: int | None = None,
    ) -> RunSummary:
        """Process every bar of ``feed`` after the account's last processed one (at most
        ``max_bars``). A new account's first bar is the first row on or after ``start`` (default:
        row ``window - 1``, the first with a full feature window, as the replay). ``decide(obs,
        bar)`` gets the (1, obs_dim) observation at feed row ``bar`` and returns (1, N) weights,
        or ``(weights, hold)``; its weights fill at the next bar's close.

        The feed is checked before anything is written: tickers equal to the account's (reordered
        if needed), dates sorted and unique, every listed ticker priced on every bar up to the last
        one processed, and the closes of the account's last bar unchanged."""
        with self.store.locked():
            state = self._open_account(model_id)
            if hasattr(self.store, "read_log"):
                reconcile(self.store)
            feed = self._check_feed_tickers(feed, state)
            first = self._first_bar(feed, state, start)
            stop = feed.n_bars if max_bars is None else min(feed.n_bars, first + max_bars)
            if first >= stop:
                return RunSummary(0, None, state.last_bar, state)
            self._check_feed_prices(feed, state, first, stop)
            core = self._core(feed, stop)
            first_bar = None
            for i in range(first, stop):
                if i == first:  # this run opens the account's newest session
                    state = dataclasses.replace(state, session_first_bar=_iso(feed.dates[i]))
                state = self._process_bar(state, core, feed, i, decide, model_id)
                first_bar = first_bar or state.last_bar
            return RunSummary(stop - first, first_bar, state.last_bar, state)

    def _open_account(self, model_id: str | None) -> PortfolioAccountState:
        if not self.store.exists():
            self.store.initialize(
                new_portfolio_account(self.tickers, self.config, self.granularity, model_id)
            )
        state = self.store.load()
        if not isinstance(state, PortfolioAccountState):
            raise AccountStateError(
                f"{self.store.folder}: a single-asset paper account cannot trade the universe "
                f"{list(self.tickers)}; use a new account folder. Nothing was traded."
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
                f"{self.store.folder}: the account was created with {'; '.join(problems)}; these never "
                "change for an account. Use a new account folder. Nothing was traded."
            )
        check_portfolio_state(state, source=str(self.store.folder))
        return state

    def _check_feed_tickers(self, feed: PortfolioPanel, state: PortfolioAccountState) -> PortfolioPanel:
        if not isinstance(feed, PortfolioPanel):
            raise PortfolioFeedError(
                f"the portfolio feed must be a PortfolioPanel (closes and raw features), got {type(feed)}"
            )
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

    def _first_bar(self, feed: PortfolioPanel, state: PortfolioAccountState, start) -> int:
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

    def _check_feed_prices(self, feed: PortfolioPanel, state: PortfolioAccountState, first: int, stop: int):
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

    # -- one bar ---------------------------------------------------------------------------
    def _process_bar(self, state, core, feed, i, decide, model_id) -> PortfolioAccountState:
        """Bar ``i`` in the order of its timeline (fill the pending order at its close, mark,
        risk checks, decide); its log lines and new state are committed as one unit."""
        at, day = _iso(feed.dates[i]), feed.dates[i].date().isoformat()
        s, events = switch_model(state, at, model_id)
        s = roll_day(s, day)
        s, trades, mark = self._fill_and_mark(s, core, feed, i, at)
        alerts = self.drift_check(feed, i) if self.drift_check is not None else []
        s, risk_events = risk_checks(s, at, day, self.limits, alerts, self.halt_on_drift)
        s, order = self._decide(s, core, feed, i, at, decide)
        return self.store.commit(
            s, {"orders": [order], "trades": trades, "equity": [mark], "events": events + risk_events}
        )

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
    def _decide(self, s, core, feed, i, at, decide):
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
            w, why = self._limit(w, s, core, i, self.limits)
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
# Reconciliation and the ledger
# ---------------------------------------------------------------------------------------
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
