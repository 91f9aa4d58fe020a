"""Every benchmark, for one asset or a universe, as a :class:`~.strategies.Strategy`.

Each decides target weights over N assets from the closes up to the decision bar; the kernels
fill them at the next bar with the agents' costs and capital (one asset: :func:`position_targets`
and :class:`ScheduledDecision` for ``env.replay``; a universe: ``portfolio.replay``). At N = 1 a
weight is the position (1 long, 0 flat, -1 short) and equal weight is buy-and-hold.
:func:`single_asset_benchmarks` and :func:`portfolio_benchmarks` build the runs of the
``evaluation.benchmarks`` and ``portfolio.benchmarks`` blocks (docs/evaluation.md, "One strategy
interface").

Calendar rebalancing (:func:`rebalance_rows`: the first decision, then the first decision bar of
each week, month or quarter; in between a lane holds): :class:`EqualWeight`, :class:`BuyAndHold`
(once), :class:`MeanRisk` and :class:`RandomWeights`. Every bar: :class:`Flat`,
:class:`SmaCrossover`, :class:`Momentum` (TA-Lib SMA and ROCP, per asset) and
:class:`RandomPositions`.

:class:`MeanRisk` fits skfolio's ``MeanRisk`` (variance, ``MINIMIZE_RISK`` or ``MAXIMIZE_RATIO``,
long-only and fully invested, raising on a failed solve) on the trailing ``lookback`` simple
returns. Its rules, kept in ``events`` and logged: ``warmup_equal_weight`` (fewer than
``min_history`` returns, or no asset with a full window: equal weight), ``single_asset`` (one
asset with a full window gets weight 1), ``no_positive_return`` (max Sharpe, no asset with a
positive mean return: cash). A solver failure raises :class:`BenchmarkError` naming the run, the
date and the assets.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import talib
import torch

from ..params.evaluation import BenchmarkParams
from ..params.portfolio import PortfolioBenchmarkParams
from .strategies import Prices, Strategy, StrategyInputError, check_first

__all__ = [
    "BENCHMARKS",
    "PORTFOLIO_BENCHMARKS",
    "RANDOM_RUN",
    "BenchmarkError",
    "BuyAndHold",
    "EqualWeight",
    "Flat",
    "MeanRisk",
    "Momentum",
    "RandomPositions",
    "RandomWeights",
    "ScheduledDecision",
    "SmaCrossover",
    "buy_and_hold_targets",
    "portfolio_benchmarks",
    "position_targets",
    "random_targets",
    "rebalance_rows",
    "single_asset_benchmarks",
    "targets_to_actions",
]

log = logging.getLogger(__name__)

#: Deterministic single-asset benchmarks (``evaluation.benchmarks``), in report order.
BENCHMARKS = ("buy_and_hold", "flat", "sma_crossover", "momentum")
#: Deterministic universe benchmarks (``portfolio.benchmarks.names``), in report order.
PORTFOLIO_BENCHMARKS = ("equal_weight", "buy_and_hold", "index", "min_variance", "max_sharpe")
RANDOM_RUN = "random"
_PERIOD = {"weekly": "W", "monthly": "M", "quarterly": "Q"}


class BenchmarkError(StrategyInputError):
    """A benchmark cannot be computed (bad parameter, failed fit); the message names what and when."""


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise BenchmarkError(f"{name}: must be a positive integer, got {value!r}.")
    return int(value)


def rebalance_rows(dates: pd.DatetimeIndex, first: int, frequency: str | None = "monthly") -> np.ndarray:
    """(T,) bool: row ``first`` and every later row whose calendar period (week, month, quarter)
    differs from the previous row's: the first decision bar of each period (``None``: ``first``
    only). Uses dates only."""
    if frequency is not None and frequency not in _PERIOD:
        raise BenchmarkError(
            f"rebalance={frequency!r}: must be one of {sorted(_PERIOD)}; fix portfolio.benchmarks"
        )
    dates = pd.DatetimeIndex(dates)
    out = np.zeros(len(dates), dtype=bool)
    if frequency is not None:
        periods = dates.to_period(_PERIOD[frequency]).asi8
        out[first + 1 :] = periods[first + 1 :] != periods[first:-1]
    out[first] = True
    return out


def _equal(tradable: np.ndarray) -> np.ndarray:
    k = int(tradable.sum())
    return np.where(tradable, 1.0 / k, 0.0) if k else np.zeros(tradable.shape)


# --------------------------------------------------------------------------- calendar rebalancing
class EqualWeight(Strategy):
    """Equal weight over the listed assets at the first decision and at each ``rebalance``."""

    def __init__(self, rebalance: str | None = "monthly", name: str = "equal_weight"):
        if rebalance is not None and rebalance not in _PERIOD:
            raise BenchmarkError(
                f"rebalance={rebalance!r}: must be one of {sorted(_PERIOD)}; "
                "fix portfolio.benchmarks.rebalance"
            )
        self.name, self.rebalance = name, rebalance

    def schedule(self, prices: Prices, first: int) -> np.ndarray:
        out = self._empty(prices)
        first = check_first(prices, first)
        for bar in np.flatnonzero(rebalance_rows(prices.dates, first, self.rebalance)):
            out[:, bar] = _equal(prices.tradable(bar))
        return out


class BuyAndHold(EqualWeight):
    """Equal weight over the assets listed at the first decision, bought once and held."""

    def __init__(self, name: str = "buy_and_hold"):
        super().__init__(None, name)


class RandomWeights(Strategy):
    """Dirichlet(1) weights over the listed assets, redrawn at each rebalance; lane i draws from its
    own generator seeded with ``seeds[i]`` (a lane reproduces from its seed alone)."""

    kind = "random"

    def __init__(self, seeds: Sequence[int], rebalance: str = "monthly", name: str = RANDOM_RUN):
        self.name, self.rebalance, self._seeds = name, rebalance, _seed_list(seeds)

    def schedule(self, prices: Prices, first: int) -> np.ndarray:
        out = self._empty(prices)
        first = check_first(prices, first)
        rngs = [np.random.default_rng(int(s)) for s in self._seeds]
        for bar in np.flatnonzero(rebalance_rows(prices.dates, first, self.rebalance)):
            tradable = prices.tradable(bar)
            out[:, bar] = 0.0
            k = int(tradable.sum())
            if k:
                for i, rng in enumerate(rngs):
                    out[i, bar, tradable] = rng.dirichlet(np.ones(k))
        return out


class MeanRisk(Strategy):
    """Min-variance or max-Sharpe, fit with skfolio at each rebalance on the trailing returns."""

    OBJECTIVES = ("min_variance", "max_sharpe")

    def __init__(
        self, objective: str, lookback: int = 252, min_history: int = 63, rebalance: str = "monthly"
    ):
        if objective not in self.OBJECTIVES:
            raise BenchmarkError(f"objective {objective!r}: must be one of {list(self.OBJECTIVES)}")
        self.name = objective
        self.lookback = _positive_int("portfolio.benchmarks.lookback", lookback)
        self.min_history = _positive_int("portfolio.benchmarks.min_history", min_history)
        self.rebalance = rebalance

    def schedule(self, prices: Prices, first: int) -> np.ndarray:
        out = self._empty(prices)
        first = check_first(prices, first)
        for bar in np.flatnonzero(rebalance_rows(prices.dates, first, self.rebalance)):
            out[:, bar] = self._weights(prices, int(bar))
        return out

    def _weights(self, prices: Prices, bar: int) -> np.ndarray:
        past = prices.close[: bar + 1][-(self.lookback + 1) :]
        tradable = np.isfinite(past[-1])
        full = np.isfinite(past).all(axis=0)
        n_ret = len(past) - 1
        if n_ret < self.min_history or not full.any():
            self._note(
                prices,
                bar,
                "warmup_equal_weight",
                f"{n_ret} trailing returns, {int(full.sum())} tickers with a full window "
                f"(min_history={self.min_history})",
            )
            return _equal(tradable)
        idx = np.flatnonzero(full)
        w = np.zeros(past.shape[1])
        if idx.size == 1:
            self._note(prices, bar, "single_asset", prices.tickers[idx[0]])
            w[idx] = 1.0
            return w
        rets = past[1:, idx] / past[:-1, idx] - 1.0
        if self.name == "max_sharpe" and not (rets.mean(axis=0) > 0).any():
            self._note(prices, bar, "no_positive_return", "no ticker has a positive mean return: cash")
            return w
        w[idx] = self._fit(rets, prices, bar, idx)
        return w

    def _note(self, prices: Prices, bar: int, event: str, detail: str) -> None:
        self._event(prices, bar, event, detail)
        log.info("benchmark %s on %s: %s %s", self.name, prices.dates[bar].date(), event, detail)

    def _fit(self, rets: np.ndarray, prices: Prices, bar: int, idx: np.ndarray) -> np.ndarray:
        from skfolio import RiskMeasure  # skfolio (cvxpy) takes seconds to import: only when fitting
        from skfolio.optimization import MeanRisk as SkMeanRisk
        from skfolio.optimization import ObjectiveFunction

        objective = (
            ObjectiveFunction.MINIMIZE_RISK
            if self.name == "min_variance"
            else ObjectiveFunction.MAXIMIZE_RATIO
        )
        tickers = [prices.tickers[i] for i in idx]
        when = prices.dates[bar].date()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = SkMeanRisk(
                    objective_function=objective, risk_measure=RiskMeasure.VARIANCE, raise_on_failure=True
                ).fit(rets)
            w = np.asarray(model.weights_, dtype=np.float64)
        except Exception as exc:
            raise BenchmarkError(
                f"benchmark {self.name}: the skfolio fit at the rebalance on {when} "
                f"(row {bar - prices.start}) "
                f"over tickers {tickers} on {len(rets)} trailing returns failed: {exc}. Check those "
                "closes, or change portfolio.benchmarks.lookback"
            ) from exc
        if w.shape != (len(idx),) or not np.isfinite(w).all() or (w < -1e-6).any() or w.sum() > 1 + 1e-6:
            raise BenchmarkError(
                f"benchmark {self.name}: the skfolio fit on {when} (row {bar - prices.start}) returned "
                f"weights {w.tolist()} for {tickers}, not long-only weights adding up to 1"
            )
        w = np.clip(w, 0.0, None)
        return w / max(w.sum(), 1.0)


# --------------------------------------------------------------------------- every-bar rules
class Flat(Strategy):
    """All cash at every bar."""

    def __init__(self, name: str = "flat"):
        self.name = name

    def schedule(self, prices: Prices, first: int) -> np.ndarray:
        out = self._empty(prices)
        out[:, check_first(prices, first) :] = 0.0
        return out


class _PerAssetSignal(Strategy):
    """A signal in {-1, 0, 1} per asset from that asset's own closes since its listing
    (``_signal``), weighted ``1/k`` over the ``k`` assets listed at the bar; decides every bar."""

    long_short = False

    def _signal(self, c: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def schedule(self, prices: Prices, first: int) -> np.ndarray:
        self.events = []
        first = check_first(prices, first)
        out = np.zeros((prices.n_bars, prices.n_assets))
        for j in range(prices.n_assets):
            c = prices.close[:, j]
            listed = np.flatnonzero(np.isfinite(c))
            if listed.size:
                out[listed[0] :, j] = np.nan_to_num(
                    self._signal(np.ascontiguousarray(c[listed[0] :])), nan=0.0
                )
        k = np.isfinite(prices.close).sum(axis=1, keepdims=True)
        out = np.where(k > 0, out / np.maximum(k, 1), 0.0)
        out[:first] = np.nan
        return out[None]


class SmaCrossover(_PerAssetSignal):
    """Per asset: long while SMA(fast) > SMA(slow) of closes <= t, else flat (short with
    ``long_short``); flat during the warm-up (the first ``slow - 1`` closes)."""

    def __init__(self, fast: int, slow: int, long_short: bool = False, name: str = "sma_crossover"):
        self.name, self.long_short = name, bool(long_short)
        self.fast = _positive_int("evaluation.benchmarks.sma_fast", fast)
        self.slow = _positive_int("evaluation.benchmarks.sma_slow", slow)
        if self.fast >= self.slow:
            raise BenchmarkError(
                f"evaluation.benchmarks.sma_fast ({fast}) must be smaller than "
                f"evaluation.benchmarks.sma_slow ({slow})."
            )

    def _signal(self, c: np.ndarray) -> np.ndarray:
        f, s = talib.SMA(c, timeperiod=self.fast), talib.SMA(c, timeperiod=self.slow)
        out = np.where(f > s, 1.0, -1.0 if self.long_short else 0.0)
        out[np.isnan(s)] = 0.0
        return out


class Momentum(_PerAssetSignal):
    """Per asset: the sign of the return over the last ``lookback`` bars, long if positive, else
    flat (short if negative with ``long_short``); flat during the first ``lookback`` closes."""

    def __init__(self, lookback: int, long_short: bool = False, name: str = "momentum"):
        self.name, self.long_short = name, bool(long_short)
        self.lookback = _positive_int("evaluation.benchmarks.momentum_lookback", lookback)

    def _signal(self, c: np.ndarray) -> np.ndarray:
        ret = talib.ROCP(c, timeperiod=self.lookback)
        return np.where(ret > 0, 1.0, np.where((ret < 0) & self.long_short, -1.0, 0.0))


def _seed_list(seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise BenchmarkError("random benchmark: needs at least one seed.")
    if len(set(seeds)) != len(seeds):
        raise BenchmarkError(
            "random benchmark seeds (evaluation.benchmarks.random_seeds): seeds must be distinct."
        )
    return seeds


def random_targets(
    n_bars: int, positions: Sequence[float], seeds: Sequence[int], switch_prob: float = 1.0
) -> np.ndarray:
    """Seeded random positions, one row per seed: shape (len(seeds), n_bars).

    At bar 0 and then with probability ``switch_prob`` at each bar, a position is drawn
    uniformly from ``positions``; otherwise the previous one is kept. The draws and the switch
    decisions come from two child streams of the seed (numpy PCG64), one value per bar each, so
    the schedule is prefix-stable: bar t's target does not depend on how many bars follow."""
    n_bars = _positive_int("n_bars", n_bars)
    pos = np.asarray(list(positions), dtype=float)
    if pos.size == 0 or not np.all(np.isfinite(pos)):
        raise BenchmarkError("evaluation.benchmarks.random_positions: need at least one finite position.")
    if not 0 < switch_prob <= 1:
        raise BenchmarkError(
            f"evaluation.benchmarks.random_switch_prob: must be in (0, 1], got {switch_prob!r}."
        )
    seeds = _seed_list(seeds)
    out = np.empty((len(seeds), n_bars))
    for i, seed in enumerate(seeds):
        draw_stream, switch_stream = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        draws = pos[np.minimum((draw_stream.random(n_bars) * pos.size).astype(np.int64), pos.size - 1)]
        switch = switch_stream.random(n_bars) < switch_prob
        switch[0] = True
        # forward-fill the drawn position from the last switching bar
        last = np.maximum.accumulate(np.where(switch, np.arange(n_bars), 0))
        out[i] = draws[last]
    return out


class RandomPositions(Strategy):
    """One asset: per seed a position drawn from ``positions`` (:func:`random_targets`), its
    streams starting at the replayed window's first row (``Prices.start``)."""

    kind = "random"

    def __init__(
        self,
        positions: Sequence[float],
        seeds: Sequence[int],
        switch_prob: float = 1.0,
        name: str = RANDOM_RUN,
    ):
        self.name, self.positions, self.switch_prob = name, tuple(positions), switch_prob
        self._seeds = _seed_list(seeds)
        random_targets(1, self.positions, self._seeds[:1], switch_prob)  # parameters checked here

    def schedule(self, prices: Prices, first: int) -> np.ndarray:
        out = self._empty(prices)
        first = check_first(prices, first)
        if prices.n_assets != 1:
            raise BenchmarkError(
                f"benchmark {self.name}: draws positions of one asset, but the prices hold {prices.n_assets} "
                f"({list(prices.tickers)}); use RandomWeights for a universe"
            )
        targets = random_targets(prices.n_bars - prices.start, self.positions, self._seeds, self.switch_prob)
        out[:, prices.start :, 0] = targets
        out[:, :first] = np.nan
        return out


# --------------------------------------------------------------------------- parameters -> benchmarks
def single_asset_benchmarks(bench: BenchmarkParams, positions: Sequence[float]) -> list[Strategy]:
    """The single-asset runs of ``evaluation.benchmarks`` (:data:`BENCHMARKS`, then ``random``
    drawing from the environment's ``positions``)."""
    return [
        BuyAndHold(),
        Flat(),
        SmaCrossover(bench.sma_fast, bench.sma_slow, bench.long_short),
        Momentum(bench.momentum_lookback, bench.long_short),
        RandomPositions(positions, range(bench.random_seeds), bench.random_switch_prob),
    ]


def portfolio_benchmarks(params: PortfolioBenchmarkParams) -> list[Strategy]:
    """The universe runs of ``portfolio.benchmarks.names`` in :data:`PORTFOLIO_BENCHMARKS` order,
    then ``random`` (``index`` replays another series and is built by the caller)."""
    make = {
        "equal_weight": lambda: EqualWeight(params.rebalance),
        "buy_and_hold": BuyAndHold,
        "min_variance": lambda: MeanRisk(
            "min_variance", params.lookback, params.min_history, params.rebalance
        ),
        "max_sharpe": lambda: MeanRisk("max_sharpe", params.lookback, params.min_history, params.rebalance),
    }
    out = [make[n]() for n in PORTFOLIO_BENCHMARKS if n in params.names and n in make]
    if RANDOM_RUN in params.names:
        seeds = [params.random_seed + i for i in range(params.n_random_seeds)]
        out.append(RandomWeights(seeds, params.rebalance))
    return out


# --------------------------------------------------------------------------- the single-asset kernel
def position_targets(schedule: np.ndarray) -> np.ndarray:
    """A one-asset ``(lanes, T, 1)`` schedule as ``(lanes, T)`` target positions for the
    single-asset kernel: a holding bar repeats the last decision (the kernel keeps an unchanged
    position without an order); bars before the first decision are 0."""
    s = np.asarray(schedule, dtype=float)
    if s.ndim != 3 or s.shape[2] != 1:
        raise BenchmarkError(f"position_targets: expected a one-asset schedule (lanes, T, 1), got {s.shape}")
    s = s[:, :, 0]
    idx = np.where(np.isnan(s), 0, np.arange(s.shape[1])[None])
    np.maximum.accumulate(idx, axis=1, out=idx)
    return np.nan_to_num(np.take_along_axis(s, idx, axis=1), nan=0.0)


def buy_and_hold_targets(close) -> np.ndarray:
    """(T,) target positions of :class:`BuyAndHold` on one asset's closes: 1.0 (fully long) at every bar."""
    return position_targets(BuyAndHold().schedule(Prices.of(close), 0))[0]


def targets_to_actions(targets, positions: Sequence[float] | None) -> np.ndarray:
    """Map target positions to discrete action indices into ``positions`` (exact match
    required), or pass them through as floats for a continuous action space (``None``)."""
    t = np.asarray(targets, dtype=float)
    if positions is None:
        return t
    pos = np.asarray(list(positions), dtype=float)
    match = np.isclose(t[..., None], pos)
    ok = match.any(axis=-1)
    if not ok.all():
        bad = t[~ok].ravel()[0]
        raise BenchmarkError(
            f"targets: position {bad!r} is not one of the environment's positions {pos.tolist()}; "
            "use a long/flat benchmark or add the position to env.positions."
        )
    return match.argmax(axis=-1)


class ScheduledDecision:
    """``decide(obs) -> actions`` for the single-asset ``env.replay`` from target positions.

    ``targets`` has shape (T,) or (B, T) over the bars of the replayed table; the k-th call
    returns the action for bar ``first_bar + k`` (a full-period replay starts at
    ``first_bar = window - 1``). With B rows, obs must have B rows (one lane per seed).
    Raises if called more often than the schedule has bars, so a mismatch between the
    schedule and the replay cannot go unnoticed.
    """

    def __init__(self, targets, positions: Sequence[float] | None, first_bar: int):
        actions = targets_to_actions(targets, positions)
        self.actions = np.atleast_2d(actions)
        self.discrete = positions is not None
        if first_bar < 0 or first_bar >= self.actions.shape[1]:
            raise BenchmarkError(
                f"first_bar: {first_bar} is outside the schedule of {self.actions.shape[1]} bars."
            )
        self.bar = int(first_bar)

    def __call__(self, obs):
        if self.bar >= self.actions.shape[1]:
            raise BenchmarkError(
                f"ScheduledDecision: asked for bar {self.bar} but the schedule has only "
                f"{self.actions.shape[1]} bars; build the schedule from the replayed table."
            )
        lanes = obs.shape[0]
        col = self.actions[:, self.bar]
        if col.size == 1 and lanes != 1:
            col = np.repeat(col, lanes)
        if col.size != lanes:
            raise BenchmarkError(
                f"ScheduledDecision: schedule has {col.size} lanes but the replay has {lanes}."
            )
        self.bar += 1
        dtype = torch.long if self.discrete else torch.float32
        return torch.as_tensor(col, dtype=dtype, device=obs.device)
