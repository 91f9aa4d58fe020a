"""run_cycle: the project's pipelines in process, on a made market, deterministic."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.experiments import deep_merge, run_cycle
from reinforce_strategy_creator.markets import null_market, to_csv_frame
from reinforce_strategy_creator.project_params import parameters

TINY = {
    "training": {
        "common": {"seeds": [0, 1], "total_steps": 1024, "num_envs": 16, "eval_every": 1, "progress": False},
        "ppo": {"algorithm": "ppo", "total_steps": 1024, "num_steps": 32},
    },
    "evaluation": {"benchmarks": {"random_seeds": 100}},
}


def _params() -> dict:
    base = parameters("quick")
    base["training"] = {"common": base["training"]["common"], "ppo": base["training"]["ppo"]}
    return deep_merge(base, TINY)


def test_deep_merge_merges_nested_keys_and_copies():
    base = {"a": {"b": 1, "c": [1]}, "d": 2}
    out = deep_merge(base, {"a": {"b": 5}, "e": 3})
    assert out == {"a": {"b": 5, "c": [1]}, "d": 2, "e": 3}
    out["a"]["c"].append(2)
    assert base["a"]["c"] == [1]


@pytest.mark.slow
def test_a_cycle_in_process_is_deterministic_and_judged_on_test(sp500):
    torch.set_num_threads(1)
    market = null_market(sp500, seed=4)
    runs = [run_cycle(to_csv_frame(market.prices), _params(), source=market.name) for _ in range(2)]
    a, b = runs
    assert a.verdict["decided_on"]["split"] == "test" and a.champion["selected_on"] == "validation"
    assert a.champion["agent"] == "ppo" and set(a.ranking["agent"]) == {"ppo"}
    assert set(a.test["kind"]) == {"agent", "ensemble", "benchmark", "random"}
    pd.testing.assert_frame_equal(a.test, b.test)
    assert a.champion == b.champion and a.verdict == b.verdict
