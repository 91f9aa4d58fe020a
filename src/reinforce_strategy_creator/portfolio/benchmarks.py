"""Benchmarks a portfolio manager would use, replayed through the agents' core, costs and capital.

Every benchmark is a decider for :func:`~.replay.replay_weights` (``decide(obs, bar)`` returning
``(weights, hold)``), so it goes through the same :class:`~..env.portfolio.PortfolioCore`, the
same :class:`~..env.portfolio.PortfolioConfig` (costs, capital, window, first decision bar) and
the same fills at the next close as the agents. A decider at panel row ``bar`` reads closes up
to and including that row only (and the dates, which are known in advance); nothing later.

Runs (``PortfolioBenchmarkParams.names``; docs/metrics.md):

* ``equal_weight`` — ``1/k`` in each of the ``k`` tickers tradable at the bar, set at the first
  decision and on the first decision bar of every period (``rebalance``, monthly by default);
  in between the lane HOLDs (no order, no cost, weights drift with prices);
* ``buy_and_hold`` — equal weight over the tickers tradable at the first decision, bought once
  and held (tickers listed later are never bought). It is named ``buy_and_hold`` because
  evaluation (``evaluation.results.split_records``) and the walk-forward gate compare every
  candidate with the run of that name: for portfolios it is equal-weight buy-and-hold;
* ``index`` — the index close series, when one is given (e.g.
  ``data/01_raw/sp500_index_close_1990_2022.csv``), bought at the first decision and held as a
  one-asset panel on the same dates, through the same core, costs and capital;
* ``min_variance`` / ``max_sharpe`` — long-only, fully invested portfolios fit at every
  rebalance on the trailing ``lookback`` simple returns up to the decision bar (closes before
  the panel come from ``history_close`` when given). Tickers without a finite close on every
  row of that window are left out of the fit (weight 0);
* ``random`` — 100 (``n_random_seeds``) lanes of Dirichlet(1) weights over the tradable
  tickers, redrawn at each rebalance, lane ``i`` seeded with ``random_seed + i`` (a lane
  reproduces from its seed alone), all in one replay.

The optimiser is skfolio (``skfolio.optimization.MeanRisk``, variance as the risk measure,
``MINIMIZE_RISK`` and ``MAXIMIZE_RATIO``, default Clarabel interior-point solver). Why skfolio
and not PyPortfolioOpt: it is scikit-learn compatible (``fit(X).weights_``, like the rest of the
project's scikit-learn use), actively released, long-only and budget constraints are its
defaults, it raises when a solve fails instead of returning stale weights, and it needs only
``cvxpy-base`` + Clarabel (no compiled solver zoo).

Rules of the optimised lanes, each counted in ``BenchmarkReplays.events`` (one row per event:
date, bar, run, event, detail) and logged, never silent:

* ``warmup_equal_weight`` — fewer than ``min_history`` trailing returns, or no ticker with a full
  window: the lane sets equal weight over the tradable tickers at that rebalance (min-variance
  with no information about the covariance); give ``history_close`` to avoid it;
* ``single_asset`` — exactly one ticker has a full window: it gets weight 1 (nothing to fit);
* ``no_positive_return`` (max Sharpe) — no ticker has a positive mean trailing return, so no
  long-only portfolio has a positive Sharpe ratio: the lane goes to cash until the next
  rebalance.

A solver failure is never papered over: it raises :class:`PortfolioBenchmarkError` naming the
run, the date and the tickers.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..env.portfolio import PortfolioConfig, PortfolioInputError
from ..params.portfolio import PortfolioBenchmarkParams
from .panel import PortfolioPanel
from .replay import PortfolioRun, replay_weights

__all__ = [
    "BENCHMARK_NAMES",
    "RANDOM_RUN",
    "BenchmarkReplays",
    "PortfolioBenchmarkError",
    "PortfolioBenchmarkParams",
    "lane_run",
    "rebalance_rows",
    "replay_portfolio_benchmarks",
]

log = logging.getLogger(__name__)

#: Deterministic benchmark runs (kind "benchmark"), in report order, then the random lanes.
BENCHMARK_NAMES = ("equal_weight", "buy_and_hold", "index", "min_variance", "max_sharpe")
RANDOM_RUN = "random"
_PERIOD = {"weekly": "W", "monthly": "M", "quarterly": "Q"}


class PortfolioBenchmarkError(PortfolioInputError):
    """A portfolio benchmark cannot be computed (bad index series, failed fit); names what and when."""


# --------------------------------------------------------------------------- schedule
def rebalance_rows(dates: pd.DatetimeIndex, first: int, frequency: str = "monthly") -> np.ndarray:
    """(T,) bool: row ``first`` and every later row whose calendar period (week, month, quarter)
    differs from the previous row's: the first decision bar of each period. Uses dates only."""
    if frequency not in _PERIOD:
        raise PortfolioBenchmarkError(
            f"rebalance={frequency!r}: must be one of {sorted(_PERIOD)}; fix portfolio.benchmarks"
        )
    dates = pd.DatetimeIndex(dates)
    periods = dates.to_period(_PERIOD[frequency]).asi8
    out = np.zeros(len(dates), dtype=bool)
    out[first + 1 :] = periods[first + 1 :] != periods[first:-1]
    out[first] = True
    return out


def _equal(tradable: np.ndarray) -> np.ndarray:
    k = int(tradable.sum())
    return np.where(tradable, 1.0 / k, 0.0) if k else np.zeros(tradable.shape)


@dataclass
class _Context:
    """What the deciders read: the closes (with history rows before the panel), dates, schedule."""

    panel: PortfolioPanel
    close: np.ndarray  # (H + T, N): history rows before the panel, then the panel's closes
    offset: int  # H
    rebalance: np.ndarray  # (T,) bool over panel rows
    first: int
    events: list[dict] = field(default_factory=list)

    def closes_up_to(self, bar: int) -> np.ndarray:
        """Closes up to and including panel row ``bar`` (the no-look-ahead boundary)."""
        return self.close[: self.offset + bar + 1]

    def tradable(self, bar: int) -> np.ndarray:
        return np.isfinite(self.closes_up_to(bar)[-1])

    def event(self, bar: int, run: str, event: str, detail: str = "") -> None:
        date = self.panel.dates[bar]
        self.events.append({"date": date, "bar": bar, "run": run, "event": event, "detail": detail})
        log.info("portfolio benchmark %s on %s: %s %s", run, date.date(), event, detail)


class _EqualWeight:
    def __init__(self, ctx: _Context, once: bool = False):
        self.ctx, self.once = ctx, once

    def __call__(self, bar: int) -> np.ndarray | None:
        trade = bar == self.ctx.first if self.once else bool(self.ctx.rebalance[bar])
        return _equal(self.ctx.tradable(bar)) if trade else None


class _Optimised:
    """Min-variance or max-Sharpe, fit with skfolio at each rebalance on trailing returns."""

    def __init__(self, ctx: _Context, name: str, lookback: int, min_history: int):
        self.ctx, self.name, self.lookback, self.min_history = ctx, name, lookback, min_history

    def __call__(self, bar: int) -> np.ndarray | None:
        ctx = self.ctx
        if not ctx.rebalance[bar]:
            return None
        past = ctx.closes_up_to(bar)[-(self.lookback + 1) :]
        tradable = np.isfinite(past[-1])
        full = np.isfinite(past).all(axis=0)
        n_ret = len(past) - 1
        if n_ret < self.min_history or not full.any():
            ctx.event(
                bar,
                self.name,
                "warmup_equal_weight",
                f"{n_ret} trailing returns, {int(full.sum())} tickers with a full window "
                f"(min_history={self.min_history})",
            )
            return _equal(tradable)
        idx = np.flatnonzero(full)
        w = np.zeros(past.shape[1])
        if idx.size == 1:
            ctx.event(bar, self.name, "single_asset", self.ctx.panel.tickers[idx[0]])
            w[idx] = 1.0
            return w
        rets = past[1:, idx] / past[:-1, idx] - 1.0
        if self.name == "max_sharpe" and not (rets.mean(axis=0) > 0).any():
            ctx.event(bar, self.name, "no_positive_return", "no ticker has a positive mean return: cash")
            return w
        w[idx] = self._fit(rets, bar, idx)
        return w

    def _fit(self, rets: np.ndarray, bar: int, idx: np.ndarray) -> np.ndarray:
        from skfolio import RiskMeasure
        from skfolio.optimization import MeanRisk, ObjectiveFunction

        objective = (
            ObjectiveFunction.MINIMIZE_RISK
            if self.name == "min_variance"
            else ObjectiveFunction.MAXIMIZE_RATIO
        )
        tickers = [self.ctx.panel.tickers[i] for i in idx]
        when = self.ctx.panel.dates[bar].date()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = MeanRisk(
                    objective_function=objective, risk_measure=RiskMeasure.VARIANCE, raise_on_failure=True
                ).fit(rets)
            w = np.asarray(model.weights_, dtype=np.float64)
        except Exception as exc:
            raise PortfolioBenchmarkError(
                f"portfolio benchmark {self.name}: the skfolio fit at the rebalance on {when} (panel row "
                f"{bar}) over tickers {tickers} on {len(rets)} trailing returns failed: {exc}. Check those "
                "closes, or change portfolio.benchmarks.lookback"
            ) from exc
        if w.shape != (len(idx),) or not np.isfinite(w).all() or (w < -1e-6).any() or w.sum() > 1 + 1e-6:
            raise PortfolioBenchmarkError(
                f"portfolio benchmark {self.name}: the skfolio fit on {when} (panel row {bar}) returned "
                f"weights {w.tolist()} for {tickers}, not long-only weights adding up to 1"
            )
        w = np.clip(w, 0.0, None)
        return w / max(w.sum(), 1.0)


class _Lanes:
    """One replay decider over several single-lane benchmarks: lane i returns weights or None (hold)."""

    def __init__(self, members: Sequence, n_assets: int):
        self.members, self.n = list(members), n_assets

    def __call__(self, obs, bar: int):
        L = len(self.members)
        w, hold = np.zeros((L, self.n)), np.zeros(L, dtype=bool)
        for i, member in enumerate(self.members):
            out = member(bar)
            if out is None:
                hold[i] = True
            else:
                w[i] = out
        return w, hold


class _Random:
    """Dirichlet(1) weights over the tradable tickers, redrawn at each rebalance; lane i has its own
    generator seeded with ``seeds[i]``."""

    def __init__(self, ctx: _Context, seeds: Sequence[int]):
        self.ctx = ctx
        self.rngs = [np.random.default_rng(int(s)) for s in seeds]

    def __call__(self, obs, bar: int):
        L, N = len(self.rngs), self.ctx.panel.n_assets
        if not self.ctx.rebalance[bar]:
            return np.zeros((L, N)), np.ones(L, dtype=bool)
        tradable = self.ctx.tradable(bar)
        w = np.zeros((L, N))
        k = int(tradable.sum())
        if k:
            for i, rng in enumerate(self.rngs):
                w[i, tradable] = rng.dirichlet(np.ones(k))
        return w, np.zeros(L, dtype=bool)


class _BuyOnce:
    def __init__(self, first: int):
        self.first = first

    def __call__(self, obs, bar: int):
        if bar == self.first:
            return np.ones((obs.shape[0], 1)), np.zeros(obs.shape[0], dtype=bool)
        return np.zeros((obs.shape[0], 1)), np.ones(obs.shape[0], dtype=bool)


# --------------------------------------------------------------------------- inputs
def _history(panel: PortfolioPanel, history_close: pd.DataFrame | None) -> np.ndarray:
    """Closes of ``history_close`` dated before the panel's first date (panel ticker order); on the
    dates both hold, they must be the panel's closes."""
    if history_close is None:
        return np.empty((0, panel.n_assets))
    if not isinstance(history_close, pd.DataFrame) or not isinstance(history_close.index, pd.DatetimeIndex):
        raise PortfolioBenchmarkError(
            "history_close: expected a DataFrame of closes (DatetimeIndex x tickers), got "
            f"{type(history_close).__name__}"
        )
    missing = [t for t in panel.tickers if t not in history_close.columns]
    if missing:
        raise PortfolioBenchmarkError(
            f"history_close: tickers {missing} of the panel are missing; pass the universe's close table"
        )
    hist = history_close[list(panel.tickers)].sort_index()
    if hist.index.has_duplicates:
        raise PortfolioBenchmarkError(
            f"history_close: date {hist.index[hist.index.duplicated()][0].date()} appears twice"
        )
    both = hist.index.intersection(panel.dates)
    if len(both):
        a = hist.loc[both].to_numpy(dtype=np.float64)
        b = panel.close[panel.dates.get_indexer(both)]
        same = np.isclose(a, b, rtol=1e-12, atol=0.0) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            r, c = (int(i[0]) for i in np.nonzero(~same))
            raise PortfolioBenchmarkError(
                f"history_close: the close of ticker {panel.tickers[c]!r} on {both[r].date()} is {a[r, c]} "
                f"but the panel's is {b[r, c]}; history and panel come from different data"
            )
    return hist.loc[hist.index < panel.dates[0]].to_numpy(dtype=np.float64)


def _index_panel(panel: PortfolioPanel, index_close: pd.Series, first: int) -> PortfolioPanel:
    """The index as a one-asset panel on the panel's dates; every date from the first decision on
    must have a positive close."""
    if not isinstance(index_close, pd.Series) or not isinstance(index_close.index, pd.DatetimeIndex):
        raise PortfolioBenchmarkError(
            "index_close: expected a pandas Series of index closes with a DatetimeIndex, got "
            f"{type(index_close).__name__}"
        )
    name = str(index_close.name) if index_close.name is not None else "index"
    if index_close.index.has_duplicates:
        dup = index_close.index[index_close.index.duplicated()][0]
        raise PortfolioBenchmarkError(f"index_close ({name}): date {dup.date()} appears twice")
    values = np.array(pd.to_numeric(index_close, errors="coerce").reindex(panel.dates), dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(values[first:]) & (values[first:] > 0)))
    if bad.size:
        when = panel.dates[first + bad[0]].date()
        raise PortfolioBenchmarkError(
            f"index_close ({name}): no positive close on {when} ({bad.size} panel dates from the first "
            f"decision on lack one); the index file must cover the universe's dates "
            f"{panel.dates[first].date()} .. {panel.dates[-1].date()}"
        )
    gap = ~(np.isfinite(values) & (values > 0))  # only in the history rows (checked above)
    if gap.any():  # the core allows a leading block of NaN only: history before the last gap is unused
        values[: int(np.flatnonzero(gap)[-1]) + 1] = np.nan
    features = np.zeros((panel.n_bars, 1, 1), dtype=np.float32)
    return PortfolioPanel(values[:, None], features, (name,), panel.dates)


def lane_run(run: PortfolioRun, lanes: Sequence[int] | slice) -> PortfolioRun:
    """The lanes ``lanes`` of a replay as their own :class:`PortfolioRun` (same dates and config)."""
    per_lane = (
        "equity",
        "cash",
        "cost",
        "commission",
        "slippage",
        "borrow",
        "traded_notional",
        "weights",
        "shares",
        "traded_shares",
        "fill_price",
        "targets",
    )
    sel = lanes if isinstance(lanes, slice) else np.asarray(list(lanes), dtype=np.int64)
    return replace(run, **{k: getattr(run, k)[sel] for k in per_lane})


class BenchmarkReplays(list):
    """``[(kind, name, seeds, PortfolioRun), ...]`` plus ``events``: a DataFrame (date, bar, run,
    event, detail) of every rule the optimised lanes applied (see the module docstring)."""

    events: pd.DataFrame


# --------------------------------------------------------------------------- replay
def replay_portfolio_benchmarks(
    panel: PortfolioPanel,
    config: PortfolioConfig,
    params: PortfolioBenchmarkParams | Mapping | None = None,
    index_close: pd.Series | None = None,
    *,
    history_close: pd.DataFrame | None = None,
    device: str | None = None,
) -> BenchmarkReplays:
    """Replay the portfolio benchmarks on ``panel`` with the agents' ``config`` (same costs, capital,
    window and first decision bar). Mirrors ``evaluation.backtests.replay_benchmarks``.

    Returns ``[(kind, name, seeds, PortfolioRun)]``: kind ``"benchmark"`` (seed ``[0]``) for the
    deterministic runs in :data:`BENCHMARK_NAMES` order, then ``"random"`` with its seeds
    (``random_seed + i``). ``index_close`` (a close Series with a DatetimeIndex) adds ``index``;
    ``history_close`` (dates x tickers) gives the optimised lanes the closes before the panel.
    """
    params = PortfolioBenchmarkParams.parse(params)
    if not isinstance(panel, PortfolioPanel):
        raise PortfolioBenchmarkError(f"panel: expected a PortfolioPanel, got {type(panel).__name__}")
    if not isinstance(config, PortfolioConfig):
        raise PortfolioBenchmarkError(f"config: expected a PortfolioConfig, got {type(config).__name__}")
    first = config.window - 1
    if panel.n_bars < first + 2:
        raise PortfolioBenchmarkError(
            f"the panel has {panel.n_bars} bars; a replay with window {config.window} needs at least "
            f"{first + 2}"
        )
    prior = _history(panel, history_close)
    ctx = _Context(
        panel=panel,
        close=np.concatenate([prior, panel.close]),
        offset=len(prior),
        rebalance=rebalance_rows(panel.dates, first, params.rebalance),
        first=first,
    )
    out = BenchmarkReplays()
    makers = {
        "equal_weight": lambda: _EqualWeight(ctx),
        "buy_and_hold": lambda: _EqualWeight(ctx, once=True),
        "min_variance": lambda: _Optimised(ctx, "min_variance", params.lookback, params.min_history),
        "max_sharpe": lambda: _Optimised(ctx, "max_sharpe", params.lookback, params.min_history),
    }
    lanes = [n for n in BENCHMARK_NAMES if n in params.names and n in makers]
    run = replay_weights(
        panel, config, _Lanes([makers[n]() for n in lanes], panel.n_assets), len(lanes), device
    )
    by_name = {n: lane_run(run, [i]) for i, n in enumerate(lanes)}
    if "index" in params.names and index_close is not None:
        idx_panel = _index_panel(panel, index_close, first)
        by_name["index"] = replay_weights(idx_panel, config, _BuyOnce(first), 1, device)
    elif "index" in params.names:
        log.info("portfolio benchmark index: no index close series given; not replayed")
    for name in BENCHMARK_NAMES:
        if name in by_name:
            out.append(("benchmark", name, [0], by_name[name]))
    if RANDOM_RUN in params.names:
        seeds = [params.random_seed + i for i in range(params.n_random_seeds)]
        rand = replay_weights(panel, config, _Random(ctx, seeds), len(seeds), device)
        out.append(("random", RANDOM_RUN, seeds, rand))
    out.events = pd.DataFrame(ctx.events, columns=["date", "bar", "run", "event", "detail"])
    return out
