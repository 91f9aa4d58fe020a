"""The gate's statistical claims on markets whose truth is known (docs/learning.md,
docs/evaluation.md): with the `quick` budgets, on a planted one-day-momentum market the champion
finds the edge and the gate passes; on a null market (real S&P 500 days resampled i.i.d.: nothing
to learn) the champion does no harm (it holds the market about as buy-and-hold does, without
churning) and the gate fails. Both train every agent and seed, select on validation and let the gate
decide on the champion's single test replay, like the default run. In process, through the
project's pipelines (`experiments.study_market`, the stages `kedro run` runs), filling at the next
open as the planted rule does."""

from __future__ import annotations

import pytest
import torch

from reinforce_strategy_creator.evaluation.harm import harm
from reinforce_strategy_creator.experiments import study_market
from reinforce_strategy_creator.markets import make_market
from reinforce_strategy_creator.project_params import parameters

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick() -> dict:
    torch.set_num_threads(1)
    params = parameters("quick")
    params["training"]["common"]["progress"] = False
    return params


def test_the_champion_finds_a_planted_edge_and_the_gate_passes(sp500, quick):
    s = study_market(make_market("momentum", sp500, 1, strength=0.5), quick)
    print(
        f"\nPLANTED: rule {s['rule']:.2f}, B&H {s['buy_and_hold']:.2f}, champion {s['champion']} "
        f"{s['champion_test']:.2f}, passed {s['passed']}"
    )
    assert s["rule"] > 2.0 and s["rule"] > s["buy_and_hold"] + 1.0  # the market has an edge to find
    assert s["champion_test"] >= 0.7 * s["rule"]
    verdict = s["result"].verdict
    assert verdict["decided_on"]["split"] == "test"
    assert s["passed"] is True, verdict["rules"]
    assert verdict["rules"]["beats_buy_and_hold"]["passed"] and verdict["rules"]["min_psr"]["value"] >= 0.95


def test_on_a_null_market_the_champion_does_no_harm_and_the_gate_fails(sp500, quick):
    s = study_market(make_market("null", sp500, 1), quick)
    print(
        f"\nNULL: B&H {s['buy_and_hold']:.2f}, champion {s['champion']} {s['champion_test']:.2f}, "
        f"exposure {s['champion_exposure']:.2f}, turnover {s['champion_turnover']:.1f}, passed {s['passed']}"
    )
    verdict = s["result"].verdict
    assert verdict["decided_on"]["split"] == "test" and verdict["selection"]["n_trials"] > 0
    band = harm(
        s["champion_test"],
        s["champion_exposure"],
        s["champion_turnover"],
        s["buy_and_hold"],
        s["buy_and_hold_exposure"],
    )
    assert band.none, band  # the do-no-harm band (docs/learning.md, "Do no harm")
    assert s["passed"] is False
