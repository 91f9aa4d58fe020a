"""Which agents a fold holds at the benchmark: their seed ensemble must beat it on validation by
the agent's ``benchmark_margin`` (walk_forward.engine.held_to_benchmark)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reinforce_strategy_creator.params.agents import A2CConfig, DQNConfig, PPOConfig
from reinforce_strategy_creator.walk_forward.engine import held_to_benchmark

ANCHORED = {"start_at_benchmark": True, "benchmark_margin": 0.75}


def _records(bench: float, ensembles: dict[str, float]) -> pd.DataFrame:
    rows = [{"kind": "benchmark", "agent": "buy_and_hold", "seed": 0, "sharpe": bench}]
    for agent, sharpe in ensembles.items():
        rows += [
            {"kind": "agent", "agent": agent, "seed": 0, "sharpe": 9.0},  # a seed alone never decides
            {"kind": "ensemble", "agent": agent, "seed": -1, "sharpe": sharpe},
        ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "ensemble_sharpe, held",
    [(1.2 + 0.75, False), (1.2 + 0.74, True), (1.2, True), (0.3, True), (math.nan, True)],
)
def test_an_agent_is_held_unless_its_ensemble_beats_the_benchmark_by_its_margin(ensemble_sharpe, held):
    learners = {"ppo": PPOConfig(**ANCHORED), "a2c": A2CConfig(**ANCHORED), "dqn": DQNConfig(**ANCHORED)}
    records = _records(1.2, {"ppo": ensemble_sharpe, "a2c": 3.0, "dqn": 3.0})
    assert held_to_benchmark(records, learners) == (["ppo"] if held else [])


def test_agents_without_a_start_an_ensemble_or_a_benchmark_record_are_never_held():
    records = _records(1.2, {"ppo": 0.0, "a2c": 0.0})
    free = {"ppo": PPOConfig(), "a2c": A2CConfig(**ANCHORED), "dqn": DQNConfig(**ANCHORED)}
    assert held_to_benchmark(records, free) == ["a2c"]  # ppo has no start; dqn has no ensemble row
    assert held_to_benchmark(records[records["kind"] != "benchmark"], free) == []
