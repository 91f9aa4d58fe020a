"""The one deterministic replay of weight deciders over a portfolio panel.

Validation scoring, backtests, benchmarks, the stitched walk-forward record and the paper
account's parity check all call :func:`replay_weights`: L lanes (one account each) step together
through one :class:`~..env.portfolio.PortfolioCore` (the execution kernel's costs, same capital),
from the panel's first decision row ``window - 1`` to its last bar.

A decider is ``decide(obs, bar) -> weights`` or ``-> (weights, hold)``: ``obs`` the (L, obs_dim)
observation at the decision bar (features up to ``bar``, current weights), ``bar`` the decision
row in the panel (data up to this row may be used; never later rows), ``weights`` (L, N) targets
filled at the next close, ``hold`` an optional (L,) bool mask of lanes that keep their shares
this bar (no order, no cost: buy-and-hold, or between rebalances).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd
import torch

from ..env.config import EnvConfig
from ..env.portfolio import PortfolioCore, PortfolioInputError
from ..evaluation.benchmarks import (
    PORTFOLIO_BENCHMARKS,
    RANDOM_RUN,
    BenchmarkError,
    BuyAndHold,
    portfolio_benchmarks,
)
from ..evaluation.strategies import Prices, Strategy
from ..panel import PortfolioPanel
from ..params.portfolio import PortfolioBenchmarkParams

__all__ = [
    "LEDGER_COLUMNS",
    "BenchmarkReplays",
    "PortfolioRun",
    "ScheduleDecider",
    "lane_run",
    "replay_portfolio_benchmarks",
    "replay_strategies",
    "replay_weights",
]

log = logging.getLogger(__name__)

Decider = Callable[[torch.Tensor, int], object]

#: per-lane, per-bar columns of :meth:`PortfolioRun.frame` (money in account currency)
LEDGER_COLUMNS = (
    "lane",
    "bar",
    "date",
    "equity",
    "cash",
    "cost",
    "commission",
    "slippage",
    "borrow",
    "traded_notional",
    "gross_exposure",
    "n_positions",
)


#: the metadata of a :class:`PortfolioRun` field that holds one row per lane (its first axis)
PER_LANE = {"per_lane": True}


@dataclass(frozen=True)
class PortfolioRun:
    """A replay's record. Row 0 is the pre-trade start row (the first decision bar, all cash);
    row s >= 1 is the bar after the s-th decision (fills and mark at its close).

    ``equity``, ``cash``, ``cost``, ``commission``, ``slippage``, ``borrow``, ``traded_notional``:
    (L, S+1) float64; ``weights`` (at the mark), ``shares``, ``traded_shares``, ``fill_price``
    (NaN where nothing traded), ``targets`` (the decided weights, row s = decision for row s+1's
    fill; the last row is NaN): (L, S+1, N).
    """

    tickers: tuple[str, ...]
    dates: pd.DatetimeIndex  # (S+1,)
    bars: np.ndarray  # (S+1,) panel rows
    equity: np.ndarray = field(metadata=PER_LANE)
    cash: np.ndarray = field(metadata=PER_LANE)
    cost: np.ndarray = field(metadata=PER_LANE)
    commission: np.ndarray = field(metadata=PER_LANE)
    slippage: np.ndarray = field(metadata=PER_LANE)
    borrow: np.ndarray = field(metadata=PER_LANE)
    traded_notional: np.ndarray = field(metadata=PER_LANE)
    weights: np.ndarray = field(metadata=PER_LANE)
    shares: np.ndarray = field(metadata=PER_LANE)
    traded_shares: np.ndarray = field(metadata=PER_LANE)
    fill_price: np.ndarray = field(metadata=PER_LANE)
    targets: np.ndarray = field(metadata=PER_LANE)
    close: np.ndarray  # (S+1, N) the closes of the recorded bars (NaN before a listing)
    config: EnvConfig

    @property
    def n_lanes(self) -> int:
        return int(self.equity.shape[0])

    def returns(self) -> np.ndarray:
        """(L, S) simple bar returns of equity."""
        return self.equity[:, 1:] / self.equity[:, :-1] - 1.0

    def frame(self) -> pd.DataFrame:
        """The long ledger: one row per lane and bar (:data:`LEDGER_COLUMNS`)."""
        L, S1 = self.equity.shape
        eq = self.equity
        with np.errstate(divide="ignore", invalid="ignore"):
            gross = np.where(eq > 0, np.abs(self.weights).sum(2), np.nan)
        return pd.DataFrame(
            {
                "lane": np.repeat(np.arange(L), S1),
                "bar": np.tile(self.bars, L),
                "date": np.tile(self.dates.to_numpy(), L),
                "equity": eq.ravel(),
                "cash": self.cash.ravel(),
                "cost": self.cost.ravel(),
                "commission": self.commission.ravel(),
                "slippage": self.slippage.ravel(),
                "borrow": self.borrow.ravel(),
                "traded_notional": self.traded_notional.ravel(),
                "gross_exposure": gross.ravel(),
                "n_positions": (self.shares != 0).sum(2).ravel(),
            }
        )

    def weights_frame(self, lane: int) -> pd.DataFrame:
        """Date x ticker weights (at the mark) of one lane, cash as the last column."""
        w = pd.DataFrame(self.weights[lane], index=self.dates, columns=list(self.tickers))
        w["cash"] = self.cash[lane] / self.equity[lane]
        return w

    def contributions(self, lane: int) -> pd.DataFrame:
        """Date x ticker profit of one lane before costs: the shares held into each bar times the
        change of the close (row s: held from row s-1's mark to row s's); costs in their own
        column. Each row sums to the equity change, to float rounding."""
        held = self.shares[lane][:-1]
        move = np.nan_to_num(self.close[1:] - self.close[:-1], nan=0.0)
        out = pd.DataFrame(held * move, index=self.dates[1:], columns=list(self.tickers))
        out["costs"] = -self.cost[lane][1:]
        return out


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def replay_weights(
    panel: PortfolioPanel,
    config: EnvConfig,
    decide: Decider,
    num_lanes: int = 1,
    device: str | None = None,
) -> PortfolioRun:
    """Replay ``decide`` on ``num_lanes`` accounts over the whole ``panel`` (see the module
    docstring); ``episode_length`` of ``config`` is ignored (the replay covers the full period)."""
    cfg = config.replace(episode_length=None, device=device or config.device)
    core = PortfolioCore(
        panel.close, panel.features, panel.tickers, cfg, num_envs=num_lanes, seed=0, autoreset=False
    )
    L, N = num_lanes, panel.n_assets
    obs = core.reset(starts=core.lo_start)
    zeros = torch.zeros(L, dtype=torch.float64)
    rows: dict[str, list[np.ndarray]] = {
        "equity": [_np(core.equity)],
        "cash": [_np(core.cash)],
        "cost": [_np(zeros)],
        "commission": [_np(zeros)],
        "slippage": [_np(zeros)],
        "borrow": [_np(zeros)],
        "traded_notional": [_np(zeros)],
        "weights": [np.zeros((L, N))],
        "shares": [np.zeros((L, N))],
        "traded_shares": [np.zeros((L, N))],
        "fill_price": [np.full((L, N), np.nan)],
    }
    targets: list[np.ndarray] = []
    bars = [int(core.lo_start)]
    n_steps = core.last_bar - core.lo_start
    with torch.no_grad():
        for step in range(n_steps):
            bar = core.lo_start + step
            w, hold = decide(obs, bar), None
            if isinstance(w, tuple):
                w, hold = w
            w = w if isinstance(w, torch.Tensor) else torch.as_tensor(np.array(w, dtype=np.float64))
            if w.ndim != 2 or w.shape[0] != L:
                raise PortfolioInputError(
                    f"a decider returned weights of shape {tuple(w.shape)} at {panel.dates[bar].date()}; "
                    f"expected ({L} lanes, {N} tickers)"
                )
            if hold is not None:
                hold = torch.as_tensor(np.asarray(hold), dtype=torch.bool).reshape(-1)
                if hold.shape != (L,):
                    raise PortfolioInputError(
                        f"a decider returned a hold mask of shape {tuple(hold.shape)}; expected ({L},)"
                    )
                w = torch.where(hold[:, None], 0.0, w.to(torch.float64))
            w = core.check_weights(w)
            targets.append(_np(w) if hold is None else np.where(_np(hold)[:, None], np.nan, _np(w)))
            obs, _, _, _, info = core.step(w, hold=hold)
            for k in ("equity", "cash", "cost", "commission", "slippage", "borrow"):
                rows[k].append(_np(info[k]))
            rows["traded_notional"].append(_np(info["turnover"]))
            for k in ("weights", "shares", "traded_shares", "fill_price"):
                rows[k].append(_np(info[k]))
            bars.append(bar + 1)
    targets.append(np.full((L, N), np.nan))
    stacked = {k: np.stack(v, axis=1) for k, v in rows.items()}
    bars_a = np.asarray(bars, dtype=np.int64)
    return PortfolioRun(
        tickers=panel.tickers,
        dates=panel.dates[bars_a],
        bars=bars_a,
        targets=np.stack(targets, axis=1),
        close=panel.close[bars_a],
        config=cfg,
        **stacked,
    )


def constant_weights(weights: Sequence[float] | np.ndarray) -> Decider:
    """A decider that always targets the same (L, N) or (N,) weights (tests, examples)."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))

    def decide(obs: torch.Tensor, bar: int) -> np.ndarray:
        return np.broadcast_to(w, (obs.shape[0], w.shape[1]))

    return decide


def lane_run(run: PortfolioRun, lanes: Sequence[int] | slice) -> PortfolioRun:
    """The lanes ``lanes`` of a replay as their own :class:`PortfolioRun` (same dates and config)."""
    per_lane = [f.name for f in fields(run) if f.metadata.get("per_lane")]
    sel = lanes if isinstance(lanes, slice) else np.asarray(list(lanes), dtype=np.int64)
    return replace(run, **{k: getattr(run, k)[sel] for k in per_lane})


# --------------------------------------------------------------------------- strategies
class ScheduleDecider:
    """Strategies' schedules over the panel's rows as one replay decider: lane l at row ``bar``
    targets ``schedule[l, bar]``, or holds where that row is NaN."""

    def __init__(self, schedule: np.ndarray):
        self.schedule = np.asarray(schedule, dtype=np.float64)

    def __call__(self, obs: torch.Tensor, bar: int) -> tuple[np.ndarray, np.ndarray]:
        w = self.schedule[:, bar]
        hold = np.isnan(w).all(axis=1)
        return np.where(hold[:, None], 0.0, w), hold


def replay_strategies(
    panel: PortfolioPanel,
    config: EnvConfig,
    strategies: Sequence[Strategy],
    prices: Prices,
    device: str | None = None,
) -> list[PortfolioRun]:
    """Replay ``strategies`` on ``panel`` in one replay (a lane per seed of each), deciding on
    ``prices``: the panel's closes after ``prices.start`` rows of history. Returns one
    :class:`PortfolioRun` per strategy."""
    first = prices.start + config.window - 1
    schedules = [s.schedule(prices, first)[:, prices.start :] for s in strategies]
    schedule = np.concatenate(schedules)
    run = replay_weights(panel, config, ScheduleDecider(schedule), len(schedule), device)
    out, at = [], 0
    for s in strategies:
        out.append(lane_run(run, slice(at, at + s.lanes)))
        at += s.lanes
    return out


def _history(panel: PortfolioPanel, history_close: pd.DataFrame | None) -> pd.DataFrame:
    """Closes of ``history_close`` dated before the panel's first date (panel ticker order); on the
    dates both hold, they must be the panel's closes."""
    if history_close is None:
        return pd.DataFrame(columns=list(panel.tickers), index=pd.DatetimeIndex([]), dtype=np.float64)
    if not isinstance(history_close, pd.DataFrame) or not isinstance(history_close.index, pd.DatetimeIndex):
        raise BenchmarkError(
            "history_close: expected a DataFrame of closes (DatetimeIndex x tickers), got "
            f"{type(history_close).__name__}"
        )
    missing = [t for t in panel.tickers if t not in history_close.columns]
    if missing:
        raise BenchmarkError(
            f"history_close: tickers {missing} of the panel are missing; pass the universe's close table"
        )
    hist = history_close[list(panel.tickers)].sort_index()
    if hist.index.has_duplicates:
        raise BenchmarkError(
            f"history_close: date {hist.index[hist.index.duplicated()][0].date()} appears twice"
        )
    both = hist.index.intersection(panel.dates)
    if len(both):
        a = hist.loc[both].to_numpy(dtype=np.float64)
        b = panel.close[panel.dates.get_indexer(both)]
        same = np.isclose(a, b, rtol=1e-12, atol=0.0) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            r, c = (int(i[0]) for i in np.nonzero(~same))
            raise BenchmarkError(
                f"history_close: the close of ticker {panel.tickers[c]!r} on {both[r].date()} is {a[r, c]} "
                f"but the panel's is {b[r, c]}; history and panel come from different data"
            )
    return hist.loc[hist.index < panel.dates[0]].astype(np.float64)


def panel_prices(panel: PortfolioPanel, history_close: pd.DataFrame | None = None) -> Prices:
    """The panel's closes as strategy :class:`~..evaluation.strategies.Prices`, after the rows of
    ``history_close`` (dates x tickers) dated before the panel (they must agree with the panel on
    the dates both hold)."""
    prior = _history(panel, history_close)
    return Prices(
        np.concatenate([prior.to_numpy(dtype=np.float64), panel.close]),
        prior.index.append(panel.dates),
        panel.tickers,
        start=len(prior),
    )


def _index_panel(panel: PortfolioPanel, index_close: pd.Series, first: int) -> PortfolioPanel:
    """The index as a one-asset panel on the panel's dates; every date from the first decision on
    must have a positive close."""
    if not isinstance(index_close, pd.Series) or not isinstance(index_close.index, pd.DatetimeIndex):
        raise BenchmarkError(
            "index_close: expected a pandas Series of index closes with a DatetimeIndex, got "
            f"{type(index_close).__name__}"
        )
    name = str(index_close.name) if index_close.name is not None else "index"
    if index_close.index.has_duplicates:
        dup = index_close.index[index_close.index.duplicated()][0]
        raise BenchmarkError(f"index_close ({name}): date {dup.date()} appears twice")
    values = np.array(pd.to_numeric(index_close, errors="coerce").reindex(panel.dates), dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(values[first:]) & (values[first:] > 0)))
    if bad.size:
        when = panel.dates[first + bad[0]].date()
        raise BenchmarkError(
            f"index_close ({name}): no positive close on {when} ({bad.size} panel dates from the first "
            f"decision on lack one); the index file must cover the universe's dates "
            f"{panel.dates[first].date()} .. {panel.dates[-1].date()}"
        )
    gap = ~(np.isfinite(values) & (values > 0))  # only in the history rows (checked above)
    if gap.any():  # the core allows a leading block of NaN only: history before the last gap is unused
        values[: int(np.flatnonzero(gap)[-1]) + 1] = np.nan
    features = np.zeros((panel.n_bars, 1, 1), dtype=np.float32)
    return PortfolioPanel(values[:, None], features, (name,), panel.dates)


class BenchmarkReplays(list):
    """``[(kind, name, seeds, PortfolioRun), ...]`` plus ``events``: a DataFrame (date, bar, run,
    event, detail) of every rule the optimised benchmarks applied (``evaluation.benchmarks``)."""

    events: pd.DataFrame


def replay_portfolio_benchmarks(
    panel: PortfolioPanel,
    config: EnvConfig,
    params: PortfolioBenchmarkParams | Mapping | None = None,
    index_close: pd.Series | None = None,
    *,
    history_close: pd.DataFrame | None = None,
    device: str | None = None,
) -> BenchmarkReplays:
    """Replay the universe benchmarks (``evaluation.benchmarks.portfolio_benchmarks``) on
    ``panel`` with the agents' ``config`` (same costs, capital, window and first decision bar).

    Returns ``[(kind, name, seeds, PortfolioRun)]``: kind ``"benchmark"`` (seed ``[0]``) for the
    deterministic runs in ``PORTFOLIO_BENCHMARKS`` order, then ``"random"`` with its seeds
    (``random_seed + i``). ``index_close`` (a close Series with a DatetimeIndex) adds ``index``,
    :class:`~..evaluation.benchmarks.BuyAndHold` on that one-asset panel; ``history_close``
    (dates x tickers) gives the strategies the closes before the panel."""
    params = PortfolioBenchmarkParams.parse(params)
    if not isinstance(panel, PortfolioPanel):
        raise BenchmarkError(f"panel: expected a PortfolioPanel, got {type(panel).__name__}")
    if not isinstance(config, EnvConfig):
        raise BenchmarkError(f"config: expected an EnvConfig, got {type(config).__name__}")
    first = config.window - 1
    if panel.n_bars < first + 2:
        raise BenchmarkError(
            f"the panel has {panel.n_bars} bars; a replay with window {config.window} needs at least "
            f"{first + 2}"
        )
    prices = panel_prices(panel, history_close)
    strategies = portfolio_benchmarks(params)
    runs = dict(
        zip([s.name for s in strategies], replay_strategies(panel, config, strategies, prices, device))
    )
    if "index" in params.names and index_close is not None:
        idx_panel = _index_panel(panel, index_close, first)
        runs["index"] = replay_strategies(
            idx_panel, config, [BuyAndHold("index")], panel_prices(idx_panel), device
        )[0]
    elif "index" in params.names:
        log.info("portfolio benchmark index: no index close series given; not replayed")
    out = BenchmarkReplays()
    kinds = {s.name: (s.kind, list(s.seeds)) for s in strategies} | {"index": ("benchmark", [0])}
    for name in (*PORTFOLIO_BENCHMARKS, RANDOM_RUN):
        if name in runs:
            out.append((kinds[name][0], name, kinds[name][1], runs[name]))
    events = [{**e, "bar": e["bar"] - prices.start} for s in strategies for e in s.events]
    events.sort(key=lambda e: e["bar"])  # in the order of the bars, as they happened
    out.events = pd.DataFrame(events, columns=["date", "bar", "run", "event", "detail"])
    return out
