"""The walk-forward engine on made markets: honest folds, one stitched record, the gate on it.

Small budgets (the ``quick`` environment's PPO) and the default fold layout (5 test years,
2013-2017, then the paper year 2018).
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.experiments import deep_merge
from reinforce_strategy_creator.markets import make_market
from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.walk_forward import engine

pytestmark = pytest.mark.slow


def _params(market) -> dict:
    p = deep_merge(parameters("quick"), {"environment": market.environment})
    p["training"] = {"common": p["training"]["common"], "ppo": p["training"]["ppo"]}
    return p


def _walk_forward(market) -> tuple[dict, engine.StitchedRecord, list]:
    torch.set_num_threads(1)
    p = _params(market)
    features, plan = engine.plan(market.prices, p)
    results = [engine.run_fold(f, features, market.prices, p) for f in plan.folds]
    record = engine.stitch(results, features, market.prices, p)
    verdict, _ = engine.judge(record, results, p)
    return verdict, record, results


@pytest.fixture(scope="module")
def planted(sp500):
    """The planted momentum market and the whole walk-forward on it (verdict, record, results)."""
    market = make_market("momentum", sp500, seed=1, strength=0.5)
    return market, _walk_forward(market)


def test_a_fold_never_reads_past_its_validation_window(planted):
    """Perturbing every bar after fold_1's validation window (its test year and later) changes
    neither its weights nor its validation scores nor its champion (the unchanged side is fold_1
    of the planted run, ``run_fold`` on the same plan and parameters)."""
    market, (_, _, results) = planted
    p = _params(market)
    fold = engine.plan(market.prices, p)[1].folds[0]
    a = results[0]
    assert a.fold == fold
    later = market.prices.copy()
    after = later.index > fold.validation.end
    later.loc[after, ["Open", "High", "Low", "Close"]] *= 0.6
    features_b, _ = engine.plan(later, p)
    b = engine.run_fold(fold, features_b, later, p)
    assert a.champion == b.champion and a.best_seed == b.best_seed
    pd.testing.assert_frame_equal(a.validation, b.validation)
    for seed in a.bundles["ppo"].seeds:
        for k, v in a.bundles["ppo"].state_dicts[seed].items():
            assert torch.equal(v, b.bundles["ppo"].state_dicts[seed][k])


def test_planted_momentum_passes_the_gate_on_the_stitched_record(planted):
    _, (verdict, record, results) = planted
    assert [r["label"] for r in verdict["folds"]] == ["2013", "2014", "2015", "2016", "2017"]
    assert verdict["decided_on"]["split"] == "walk_forward"
    assert verdict["decided_on"]["start"].startswith("2013-01") and verdict["decided_on"]["end"].startswith(
        "2017-12"
    )
    assert verdict["passed"], verdict["rules"]
    assert verdict["procedure"]["sharpe"] > verdict["buy_and_hold"]["sharpe"]
    assert 0.0 <= verdict["pbo"]["pbo"] <= 1.0 and 0.0 <= verdict["dsr"]["value"] <= 1.0
    # the stitched account reconciles with its per-fold pieces to the cent
    recon = record.reconciliation["procedure"]
    assert sum(recon["fold_pnl_cents"].values()) == recon["final_cents"] - recon["initial_cents"]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_null_market_fails_the_gate_on_the_stitched_record(sp500, seed):
    verdict, _, _ = _walk_forward(make_market("null", sp500, seed=seed))
    assert not verdict["passed"], verdict["procedure"]
