"""Training and walk-forward folds through an executor give the bundles of the in-process path."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.compute import open_executor
from reinforce_strategy_creator.experiments import deep_merge
from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.training import TABLE, train_agent, train_agents, train_seeds_job
from reinforce_strategy_creator.walk_forward import engine
from tests.support.compute import assert_same_bundle, assert_same_history
from tests.support.training import ENV, plan, sp500_model_input


def test_score_fn_cannot_go_to_workers():
    train, validation, scaler = sp500_model_input(160, 60)
    with open_executor({"backend": "sequential"}) as ex, pytest.raises(TypeError, match="score_fn"):
        train_agent(train, validation, scaler, ENV, plan("ppo"), score_fn=lambda p: 0.0, executor=ex)


def test_every_agent_of_a_call_is_one_map_and_bad_tables_stop_it_before_any_job():
    train, validation, scaler = sp500_model_input(160, 60)
    bad = validation.copy()
    bad.iloc[3, 0] = float("nan")
    calls = []

    class Spy:
        threads_per_worker = 1
        backend = "sequential"

        def map(self, fn, payloads, shared=None, **kw):
            calls.append(len(payloads))
            with open_executor({"backend": "sequential"}) as ex:
                return ex.map(fn, payloads, shared, **kw)

    with pytest.raises(ValueError, match="model_input_validation"):
        train_agents(train, bad, scaler, ENV, [plan("ppo")], Spy())
    assert calls == []
    # one job per seed, or one per agent when its seeds train as one population
    for population, jobs in ((False, 4), (True, 2)):
        calls.clear()
        common = {"total_steps": 256, "population": population}
        plans = [plan("ppo", common=common), plan("a2c", common=common)]
        out = train_agents(train, validation, scaler, ENV, plans, Spy())
        assert calls == [jobs] and sorted(out) == ["a2c", "ppo"]
        assert out["a2c"][0].seeds == [0, 1]


def test_a_member_of_a_population_over_several_tables_is_the_member_trained_on_its_table_alone(
    tiny_training, sequential_results
):
    """Folds x seeds as one population: each table's members equal, bit for bit, the population of
    that table's seeds alone (so a fold's weights do not depend on the folds trained beside it)."""
    payloads, shared = tiny_training
    together = sequential_results[0]["members"]
    for table in (TABLE, "later"):
        alone = train_seeds_job({**payloads[0], "members": [[table, 0], [table, 1]]}, shared)["members"]
        mine = [m for m in together if m["table"] == table]
        assert [m["seed"] for m in mine] == [m["seed"] for m in alone] == [0, 1]
        for a, b in zip(mine, alone):
            assert a["state_dict"] == b["state_dict"] and a["score"] == b["score"]
            assert_same_history(a["history"], b["history"])


@pytest.mark.slow
def test_walk_forward_folds_on_two_processes_give_the_sequential_bundles_champions_and_verdict(sp500):
    torch.set_num_threads(1)
    p = parameters("quick")
    small = {"total_steps": 2048}
    p = deep_merge(p, {"training": {"common": small, "ppo": small, "a2c": small, "dqn": small}})
    prices = sp500
    features, layout = engine.plan(prices, p)
    folds = layout.folds[:2]
    # each fold alone in the driver; both folds together (folds x seeds populations) on two processes
    local = [engine.run_fold(f, features, prices, p) for f in folds]
    with open_executor({"backend": "processes", "workers": 2}) as ex:
        remote = engine.run_folds(folds, features, prices, p, executor=ex)
    for a, b in zip(local, remote):
        assert sorted(a.bundles) == sorted(b.bundles) == ["a2c", "dqn", "ppo"]
        for agent in a.bundles:
            assert_same_bundle(a.bundles[agent], b.bundles[agent])
            assert_same_history(a.histories[agent], b.histories[agent])
        assert a.champion == b.champion and a.best_seed == b.best_seed
        pd.testing.assert_frame_equal(a.validation, b.validation)
    verdicts = [engine.judge(engine.stitch(r, features, prices, p), r, p)[0] for r in (local, remote)]
    assert verdicts[0] == verdicts[1]


@pytest.mark.slow
def test_an_sb3_agent_on_worker_processes_gives_the_in_process_bundle(pool):
    pytest.importorskip("stable_baselines3")
    torch.set_num_threads(1)
    train, validation, scaler = sp500_model_input(160, 60)
    block = {"backend": "sb3", "algorithm": "ppo", "n_steps": 32, "batch_size": 64}
    p = plan("ppo", common={"total_steps": 256, "seeds": [0, 1]}, block=block)
    local, local_history = train_agent(train, validation, scaler, ENV, p)
    remote, remote_history = train_agent(train, validation, scaler, ENV, p, executor=pool)
    assert_same_bundle(local, remote)
    assert_same_history(local_history, remote_history)
