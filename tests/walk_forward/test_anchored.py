"""Which agents a fold holds at the benchmark: their seed ensemble must beat it on validation by
the agent's ``benchmark_margin`` (walk_forward.engine.held_to_benchmark)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.agents import QPolicy
from reinforce_strategy_creator.artifacts import PolicyBundle
from reinforce_strategy_creator.params.agents import A2CConfig, DQNConfig, PPOConfig
from reinforce_strategy_creator.walk_forward.engine import anchored, held_to_benchmark

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


def _bundle(seed: int) -> PolicyBundle:
    torch.manual_seed(seed)
    net = QPolicy(5, 3, (8,), "relu")
    spec = {**net.spec, "feature_names": ["a"], "window": 1, "positions": [0.0, 0.5, 1.0], "seeds": [0]}
    return PolicyBundle(spec=spec, state_dicts={0: net.state_dict()})


@pytest.mark.parametrize("trained_held", [True, False])
def test_held_agents_are_set_back_and_validation_is_replayed_only_when_a_weight_changed(trained_held):
    start, trained = _bundle(0).at_start(), _bundle(1)
    calls = []

    def validate(bundles):
        calls.append(dict(bundles))
        return _records(1.2, {"ppo": 1.2, "dqn": 1.2 if trained_held else 3.0})

    learners = {"ppo": PPOConfig(**ANCHORED), "dqn": DQNConfig(**ANCHORED)}
    bundles, _ = anchored(validate, {"ppo": start, "dqn": trained}, learners)
    assert bundles["ppo"].spec["held_benchmark"] and bundles["ppo"].same_weights(start)
    assert bundles["dqn"].spec.get("held_benchmark", False) is trained_held
    assert bundles["dqn"].same_weights(trained) is not trained_held
    assert len(calls) == (2 if trained_held else 1)  # an agent already at its start needs no replay
