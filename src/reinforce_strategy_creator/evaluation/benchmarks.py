"""Benchmark policies as causal per-bar target-position schedules.

What: buy-and-hold, flat, SMA crossover, time-series momentum and a seeded random policy,
each a function ``close prices -> target position per bar`` (array of length T, or (B, T)
for many random seeds). ``target[t]`` is the position decided at bar t, after bar t has
closed, using closes <= t only; the environment fills it at ``open[t+1]``. So benchmarks
go through the SAME trading core as the agents (``env.replay``) with identical costs and
capital: ``ScheduledDecision`` turns a schedule into the ``decide(obs) -> actions`` callable
that ``replay`` expects.

Why schedules and not observation-based policies: the environment's observation holds
scaled features, while these rules need the raw close history; precomputing the schedule
from the price table is simpler, vectorised, and easy to test for causality (changing
closes after t never changes target[t]). Indicators come from TA-Lib (SMA, ROCP).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import talib

from .metrics import EvaluationInputError, positive_series

__all__ = [
    "buy_and_hold_targets",
    "flat_targets",
    "sma_crossover_targets",
    "momentum_targets",
    "random_targets",
    "targets_to_actions",
    "ScheduledDecision",
]


def _closes(close) -> np.ndarray:
    return positive_series(
        close,
        "close",
        "array of closing prices",
        "positive finite price; clean the price table (data_ingestion) before running benchmarks.",
    )


def _period(name: str, value, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise EvaluationInputError(
            f"evaluation.benchmarks.{name}: must be a positive integer, got {value!r}."
        )
    return int(value)


def buy_and_hold_targets(close) -> np.ndarray:
    """Always fully long (target 1.0)."""
    return np.ones(_closes(close).size)


def flat_targets(close) -> np.ndarray:
    """Always flat (target 0.0): the zero-risk, zero-cost reference."""
    return np.zeros(_closes(close).size)


def sma_crossover_targets(close, fast: int, slow: int, long_short: bool = False) -> np.ndarray:
    """Long (1) when SMA(fast) > SMA(slow) of closes <= t, else flat (0) or short (-1 if
    ``long_short``). Flat during the warm-up (first ``slow - 1`` bars)."""
    c = _closes(close)
    fast = _period("sma_fast", fast, c.size)
    slow = _period("sma_slow", slow, c.size)
    if fast >= slow:
        raise EvaluationInputError(
            f"evaluation.benchmarks.sma_fast ({fast}) must be smaller than evaluation.benchmarks.sma_slow "
            f"({slow})."
        )
    f, s = talib.SMA(c, timeperiod=fast), talib.SMA(c, timeperiod=slow)
    warm = np.isnan(s)
    below = -1.0 if long_short else 0.0
    out = np.where(f > s, 1.0, below)
    out[warm] = 0.0
    return out


def momentum_targets(close, lookback: int, long_short: bool = False) -> np.ndarray:
    """Time-series momentum: sign of the return over the last ``lookback`` bars,
    ``close[t] / close[t - lookback] - 1``. Positive -> long 1; otherwise flat 0 (or short
    -1 if ``long_short`` and the return is negative). Flat during the first ``lookback`` bars."""
    c = _closes(close)
    lookback = _period("momentum_lookback", lookback, c.size)
    ret = talib.ROCP(c, timeperiod=lookback)
    out = np.zeros(c.size)
    out[ret > 0] = 1.0
    if long_short:
        out[ret < 0] = -1.0
    return out


def random_targets(
    n_bars: int, positions: Sequence[float], seeds: Sequence[int], switch_prob: float = 1.0
) -> np.ndarray:
    """Seeded random policy, one row per seed: shape (len(seeds), n_bars).

    At bar 0 and then with probability ``switch_prob`` at each bar, a position is drawn
    uniformly from ``positions``; otherwise the previous one is kept. ``switch_prob=1``
    is the i.i.d. uniform random agent; smaller values trade less. Each row depends only on
    its own seed (numpy PCG64), so results are reproducible and independent of ordering.
    The draws and the switch decisions come from two child streams of the seed, one value
    per bar each, so the schedule is prefix-stable: bar t's target does not depend on how
    many bars follow (a longer period extends the schedule, never reshuffles it).
    """
    if isinstance(n_bars, bool) or not isinstance(n_bars, (int, np.integer)) or n_bars < 1:
        raise EvaluationInputError(f"n_bars: must be a positive integer, got {n_bars!r}.")
    pos = np.asarray(list(positions), dtype=float)
    if pos.size == 0 or not np.all(np.isfinite(pos)):
        raise EvaluationInputError(
            "evaluation.benchmarks.random_positions: need at least one finite position."
        )
    if not 0 < switch_prob <= 1:
        raise EvaluationInputError(
            f"evaluation.benchmarks.random_switch_prob: must be in (0, 1], got {switch_prob!r}."
        )
    seeds = list(seeds)
    if len(set(seeds)) != len(seeds):
        raise EvaluationInputError("evaluation.benchmarks.random_seeds: seeds must be distinct.")
    out = np.empty((len(seeds), n_bars))
    for i, seed in enumerate(seeds):
        draw_stream, switch_stream = (
            np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2)
        )
        draws = pos[np.minimum((draw_stream.random(n_bars) * pos.size).astype(np.int64), pos.size - 1)]
        switch = switch_stream.random(n_bars) < switch_prob
        switch[0] = True
        # forward-fill the drawn position from the last switching bar
        last = np.maximum.accumulate(np.where(switch, np.arange(n_bars), 0))
        out[i] = draws[last]
    return out


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
        raise EvaluationInputError(
            f"targets: position {bad!r} is not one of the environment's positions {pos.tolist()}; "
            "use a long/flat benchmark or add the position to env.positions."
        )
    return match.argmax(axis=-1)


class ScheduledDecision:
    """``decide(obs) -> actions`` for ``env.replay`` from a precomputed schedule.

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
            raise EvaluationInputError(
                f"first_bar: {first_bar} is outside the schedule of {self.actions.shape[1]} bars."
            )
        self.bar = int(first_bar)

    def __call__(self, obs):
        import torch

        if self.bar >= self.actions.shape[1]:
            raise EvaluationInputError(
                f"ScheduledDecision: asked for bar {self.bar} but the schedule has only "
                f"{self.actions.shape[1]} bars; build the schedule from the replayed table."
            )
        lanes = obs.shape[0]
        col = self.actions[:, self.bar]
        if col.size == 1 and lanes != 1:
            col = np.repeat(col, lanes)
        if col.size != lanes:
            raise EvaluationInputError(
                f"ScheduledDecision: schedule has {col.size} lanes but the replay has {lanes}."
            )
        self.bar += 1
        dtype = torch.long if self.discrete else torch.float32
        return torch.as_tensor(col, dtype=dtype, device=obs.device)
