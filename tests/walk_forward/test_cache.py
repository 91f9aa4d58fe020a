"""Unchanged folds are not retrained: fold results stored under a fingerprint."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.experiments import deep_merge
from reinforce_strategy_creator.markets import make_market
from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.walk_forward import engine
from reinforce_strategy_creator.walk_forward.cache import FoldCache

pytestmark = pytest.mark.slow


def _params(market) -> dict:
    p = deep_merge(parameters("quick"), {"environment": market.environment, "walk_forward": {"folds": 2}})
    p["training"] = {"common": {**p["training"]["common"], "seeds": [0]}, "ppo": p["training"]["ppo"]}
    return p


def _run(prices: pd.DataFrame, params: dict, cache: FoldCache) -> dict[str, engine.FoldResult]:
    torch.set_num_threads(1)
    features, plan = engine.plan(prices, params)
    folds = (*plan.folds, plan.deployment)
    return {f"{f.name} ({f.label})": engine.run_fold(f, features, prices, params, cache=cache) for f in folds}


def test_a_rerun_trains_nothing_and_a_new_year_trains_only_the_new_deployment_fold(sp500, tmp_path):
    market = make_market("momentum", sp500, seed=1, strength=0.5)
    params = _params(market)
    cache = FoldCache(tmp_path / "folds")
    until_2017 = market.prices.loc[:"2017-12-31"]

    first = _run(until_2017, params, cache)
    assert list(first) == ["fold_1 (2015)", "fold_2 (2016)", "deployment (paper 2017)"]
    assert not any(r.from_cache for r in first.values())

    again = _run(until_2017, params, cache)
    assert all(r.from_cache for r in again.values())
    for name, r in again.items():
        assert r.champion == first[name].champion and r.best_seed == first[name].best_seed
        pd.testing.assert_frame_equal(r.validation, first[name].validation)
        for k, v in r.bundles["ppo"].state_dicts[0].items():
            assert torch.equal(v, first[name].bundles["ppo"].state_dicts[0][k])

    appended = _run(market.prices, params, cache)  # 2018 appended
    assert list(appended) == ["fold_1 (2016)", "fold_2 (2017)", "deployment (paper 2018)"]
    assert [r.from_cache for r in appended.values()] == [True, True, False]
    # the new fold_1 is the old fold_2, the new fold_2 the old deployment fold (same windows)
    assert appended["fold_1 (2016)"].champion == first["fold_2 (2016)"].champion
    assert appended["fold_2 (2017)"].champion == first["deployment (paper 2017)"].champion

    changed = deep_merge(params, {"training": {"ppo": {"learning_rate": 1e-3}}})
    assert not any(r.from_cache for r in _run(market.prices, changed, cache).values())


def test_a_stored_fold_is_written_whole_or_not_at_all(sp500, tmp_path, monkeypatch):
    market = make_market("null", sp500, seed=1)
    params = _params(market)
    features, plan = engine.plan(market.prices, params)
    cache = FoldCache(tmp_path / "folds")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError, match="disk full"):
        engine.run_fold(plan.folds[0], features, market.prices, params, cache=cache)
    assert list((tmp_path / "folds").iterdir()) == []
