"""Benchmark schedules: hand examples, causality, seeded randomness, decide adapter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.evaluation.benchmarks import (
    ScheduledDecision,
    buy_and_hold_targets,
    flat_targets,
    momentum_targets,
    random_targets,
    sma_crossover_targets,
    targets_to_actions,
)
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError


def test_constant_benchmarks():
    c = [10.0, 11.0, 12.0]
    assert buy_and_hold_targets(c).tolist() == [1, 1, 1]
    assert flat_targets(c).tolist() == [0, 0, 0]


def test_sma_crossover_hand():
    c = np.array([5, 4, 3, 4, 5, 6, 5, 4, 3], dtype=float)
    # SMA2: -, 4.5, 3.5, 3.5, 4.5, 5.5, 5.5, 4.5, 3.5 ; SMA3: -, -, 4, 3.667, 4, 5, 5.333, 5, 4
    assert sma_crossover_targets(c, 2, 3).tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert sma_crossover_targets(c, 2, 3, long_short=True).tolist() == [0, 0, -1, -1, 1, 1, 1, -1, -1]
    with pytest.raises(EvaluationInputError, match="sma_fast"):
        sma_crossover_targets(c, 3, 3)


def test_momentum_hand():
    c = np.array([10, 11, 9, 12, 12, 8], dtype=float)
    # 2-bar return: -, -, -0.1, +0.0909, +0.333, -0.333
    assert momentum_targets(c, 2).tolist() == [0, 0, 0, 1, 1, 0]
    assert momentum_targets(c, 2, long_short=True).tolist() == [0, 0, -1, 1, 1, -1]
    with pytest.raises(EvaluationInputError, match="momentum_lookback"):
        momentum_targets(c, 0)
    with pytest.raises(EvaluationInputError, match="row 1"):
        momentum_targets([10.0, np.nan, 3.0], 1)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(30, 120), st.data())
def test_schedules_are_causal(seed, n, data):
    """Changing closes after bar t never changes the targets at bars <= t."""
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    t = data.draw(st.integers(0, n - 2))
    c2 = c.copy()
    c2[t + 1 :] *= np.exp(rng.normal(0, 0.3, n - t - 1))
    for f in (lambda x: sma_crossover_targets(x, 3, 10, True), lambda x: momentum_targets(x, 5, True)):
        np.testing.assert_array_equal(f(c)[: t + 1], f(c2)[: t + 1])


def test_random_targets_seeded_and_switch_prob():
    a = random_targets(500, (0.0, 1.0), seeds=range(100))
    b = random_targets(500, (0.0, 1.0), seeds=range(100))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (100, 500) and set(np.unique(a)) == {0.0, 1.0}
    assert len({row.tobytes() for row in a}) == 100  # distinct seeds, distinct paths
    np.testing.assert_array_equal(random_targets(500, (0.0, 1.0), seeds=[5])[0], a[5])  # order-free
    slow = random_targets(2000, (0.0, 1.0), seeds=[1], switch_prob=0.05)[0]
    changes = np.count_nonzero(np.diff(slow))
    assert 10 < changes < 100  # about 2000 * 0.05 * 0.5 = 50
    with pytest.raises(EvaluationInputError, match="distinct"):
        random_targets(5, (0.0, 1.0), seeds=[1, 1])


def test_targets_to_actions_and_decide_adapter():
    pos = (-1.0, 0.0, 1.0)
    assert targets_to_actions([1.0, 0.0, -1.0], pos).tolist() == [2, 1, 0]
    with pytest.raises(EvaluationInputError, match="0.5"):
        targets_to_actions([0.5], pos)
    d = ScheduledDecision(np.array([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, -1.0, 1.0]]), pos, first_bar=1)
    obs = torch.zeros((2, 3))
    assert d(obs).tolist() == [2, 1]
    assert d(obs).tolist() == [2, 0]
    assert d(obs).dtype == torch.long
    with pytest.raises(EvaluationInputError, match="schedule has only 4 bars"):
        d(obs)
    cont = ScheduledDecision(np.array([0.0, 0.25, 1.0]), None, first_bar=0)
    out = cont(torch.zeros((3, 2)))  # one schedule broadcast to 3 lanes
    assert out.dtype == torch.float32 and out.tolist() == [0.0, 0.0, 0.0]
