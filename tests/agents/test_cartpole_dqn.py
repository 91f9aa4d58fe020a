"""DQN learns CartPole-v1 as a member of a population of two (the set-up and thresholds of
tests/agents/test_cartpole_learning.py; a file of its own, the longest learning test, so that
pytest-xdist runs it beside the others)."""

from __future__ import annotations

import pytest

from .test_cartpole_learning import DQN_CFG, _run

pytestmark = pytest.mark.slow


def test_dqn_solves_cartpole():
    res, returns = _run("dqn", DQN_CFG, num_envs=4, eval_every=4)
    assert res.steps <= 50_000
    assert returns.mean() >= 400, (returns, res.history.tail())
