"""Unchanged folds are not retrained: fold results stored under a fingerprint, for one asset
(``walk_forward.engine``) and for a universe (``walk_forward.universe``) alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.experiments import deep_merge
from reinforce_strategy_creator.markets import make_market, planted_rotation_market
from reinforce_strategy_creator.panel import feature_warmup, portfolio_features
from reinforce_strategy_creator.params.evaluation import EvaluationParams
from reinforce_strategy_creator.params.portfolio import PortfolioParams
from reinforce_strategy_creator.params.walk_forward import WalkForwardParams
from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.universe import read_universe_csv
from reinforce_strategy_creator.walk_forward import engine, plan_folds
from reinforce_strategy_creator.walk_forward import universe as uwf
from reinforce_strategy_creator.walk_forward.cache import FoldCache
from tests.support.env import universe_env
from tests.support.project import SP500_20_CSV

pytestmark = pytest.mark.slow


@dataclass
class World:
    """One kind of walk-forward: its data, parameters, how to cut the data at a date, run every
    fold (``{"<name> (<label>)": FoldResult}``) and stitch the test folds."""

    data: Any
    params: dict
    until: Callable[[Any, str], Any]
    run: Callable[[Any, dict, FoldCache], dict[str, engine.FoldResult]]
    stitch: Callable[[Any, dict, list[engine.FoldResult]], engine.StitchedRecord]
    changed: dict  # a hyperparameter changed


def _single_asset(sp500) -> World:
    market = make_market("momentum", sp500, seed=1, strength=0.5)
    p = deep_merge(parameters("quick"), {"environment": market.environment, "walk_forward": {"folds": 2}})
    p["training"] = {"common": {**p["training"]["common"], "seeds": [0]}, "ppo": p["training"]["ppo"]}

    def run(prices, params, cache):
        features, plan = engine.plan(prices, params)
        return {
            f"{f.name} ({f.label})": engine.run_fold(f, features, prices, params, cache=cache)
            for f in (*plan.folds, plan.deployment)
        }

    def stitch(prices, params, results):
        return engine.stitch(results, engine.plan(prices, params)[0], prices, params)

    return World(
        market.prices,
        p,
        lambda prices, day: prices.loc[:day],
        run,
        stitch,
        deep_merge(p, {"training": {"ppo": {"learning_rate": 1e-3}}}),
    )


SPEC = {"indicators": {"logret": {"periods": [1, 5, 20]}}, "recursive_warmup": 3}
WALK_FORWARD = {
    "paper_years": 1,
    "folds": 2,
    "test_years": 1,
    "validation_years": 1,
    "min_train_years": 2,
    "anchor": "calendar_year",
}
EVALUATION = {"selection": "best_agent_best_seed", "ensembles": True}
UNIVERSE_ENV = universe_env(window=4, episode_length=64)
UNIVERSE = {
    "training": {
        "seeds": [0, 1],
        "num_envs": 8,
        "eval_every": 1,
        "patience": 2,
        "agents": {"ppo": {"algorithm": "ppo", "total_steps": 1024, "num_steps": 32, "num_minibatches": 2}},
    },
    "benchmarks": {"names": ["equal_weight", "buy_and_hold"]},
}


def _universe() -> World:
    close = read_universe_csv(SP500_20_CSV).field("Close")
    panel = portfolio_features(planted_rotation_market(close, 3, n_assets=4, n_bars=2270).close, SPEC)
    warmup = feature_warmup(SPEC) + UNIVERSE_ENV.window - 1
    ev, wf = EvaluationParams.parse(EVALUATION), WalkForwardParams.parse(WALK_FORWARD)

    def run(panel, params, cache):
        p = PortfolioParams.parse(params)
        plan = plan_folds(panel.dates, wf, embargo_bars=0, warmup_bars=warmup)
        folds = (*plan.folds, plan.deployment)
        return {
            f"{f.name} ({f.label})": uwf.run_fold(f, panel, p, ev, cache=cache, environment=UNIVERSE_ENV)
            for f in folds
        }

    def until(panel, day):
        return panel.rows(0, int(panel.dates.searchsorted(pd.Timestamp(day), "right")))

    return World(
        panel,
        UNIVERSE,
        until,
        run,
        lambda panel, params, results: uwf.stitch(
            results, panel, PortfolioParams.parse(params), ev, environment=UNIVERSE_ENV
        ),
        deep_merge(UNIVERSE, {"training": {"agents": {"ppo": {"learning_rate": 1e-3}}}}),
    )


@pytest.fixture(params=["N=1", "N=4"])
def world(request, sp500) -> World:
    torch.set_num_threads(1)
    return _single_asset(sp500) if request.param == "N=1" else _universe()


def test_a_rerun_trains_nothing_and_a_new_year_trains_only_the_new_deployment_fold(world, tmp_path):
    cache = FoldCache(tmp_path / "folds")
    dates = world.data.index if isinstance(world.data, pd.DataFrame) else world.data.dates
    before = world.until(world.data, f"{dates[-1].year - 1}-12-31")  # the last year held back

    first = world.run(before, world.params, cache)
    names = list(first)
    assert [n.split()[0] for n in names] == ["fold_1", "fold_2", "deployment"]
    assert not any(r.from_cache for r in first.values())

    again = world.run(before, world.params, cache)
    assert list(again) == names and all(r.from_cache for r in again.values())
    for name, r in again.items():
        assert r.champion == first[name].champion and r.best_seed == first[name].best_seed
        pd.testing.assert_frame_equal(r.validation, first[name].validation, check_exact=True)
        for agent, bundle in r.bundles.items():
            for seed in bundle.seeds:
                for k, v in bundle.state_dicts[seed].items():
                    assert torch.equal(v, first[name].bundles[agent].state_dicts[seed][k])
    # the stitched record of the stored folds is the trained folds' record, bit for bit
    tested = [list(results.values())[:2] for results in (first, again)]
    records = [world.stitch(before, world.params, results) for results in tested]
    pd.testing.assert_frame_equal(records[0].ledger, records[1].ledger, check_exact=True)
    pd.testing.assert_frame_equal(records[0].records, records[1].records, check_exact=True)

    appended = world.run(world.data, world.params, cache)  # the last year appended
    moved = list(appended)
    assert [r.from_cache for r in appended.values()] == [True, True, False]
    # the new fold_1 is the old fold_2, the new fold_2 the old deployment fold (same windows)
    assert appended[moved[0]].champion == first[names[1]].champion
    assert appended[moved[1]].champion == first[names[2]].champion

    assert not any(r.from_cache for r in world.run(world.data, world.changed, cache).values())


def test_a_stored_fold_is_written_whole_or_not_at_all(sp500, tmp_path, monkeypatch):
    world = _single_asset(sp500)
    features, plan = engine.plan(world.data, world.params)
    cache = FoldCache(tmp_path / "folds")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError, match="disk full"):
        engine.run_fold(plan.folds[0], features, world.data, world.params, cache=cache)
    assert list((tmp_path / "folds").iterdir()) == []
