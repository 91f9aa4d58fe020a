"""study_universe: a made universe through the portfolio stage in process, its stitched record
against equal weight held and the market's rule replayed on the same rows, costs and capital."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from reinforce_strategy_creator.experiments import (
    UNIVERSE_FIGURES,
    deep_merge,
    replay_rule_on_record,
    run_universe,
    study_universe,
)
from reinforce_strategy_creator.markets import make_market, to_csv_frame
from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.universe import read_universe_csv
from tests.support.project import SP500_20_CSV

#: two one-year folds on a 1,350-bar universe, PPO alone with a tiny budget
TINY = {
    "environment": {"window": 4, "episode_length": 64, "commission_bps": 1.0, "slippage_bps": 2.0},
    "walk_forward": {
        "paper_years": 0,
        "folds": 2,
        "test_years": 1,
        "validation_years": 1,
        "min_train_years": 2,
        "anchor": "data_end",
    },
    "portfolio": {"benchmarks": {"names": ["equal_weight", "buy_and_hold", "random"]}},
}


def _params() -> dict:
    base = deep_merge(parameters("quick"), TINY)
    ppo = {"algorithm": "ppo", "total_steps": 1024, "num_steps": 32, "num_minibatches": 2}
    base["portfolio"]["training"]["agents"] = {"ppo": ppo}
    return base


@pytest.fixture(scope="module")
def universe20():
    return read_universe_csv(SP500_20_CSV).field("Close")


@pytest.fixture(scope="module")
def studies(universe20):
    torch.set_num_threads(1)
    return {
        kind: study_universe(make_market(kind, universe20, 1, n_assets=4, n_bars=1350), _params())
        for kind in ("reversal", "null")
    }


@pytest.mark.parametrize("kind", ["reversal", "null"])
def test_the_study_reports_the_record_equal_weight_and_the_rule(studies, kind):
    s = studies[kind]
    records = s["result"].record.records
    procedure = records[records["kind"] == "procedure"].iloc[0]
    held = records[records["agent"] == "buy_and_hold"].iloc[0]
    for figure in UNIVERSE_FIGURES:
        assert s[f"procedure_{figure}"] == procedure[figure] and s[f"equal_weight_{figure}"] == held[figure]
    verdict = s["result"].verdict
    assert s["passed"] == verdict["passed"] and set(s["failed_rules"]) <= set(verdict["rules"])
    assert s["window"]["start"] < s["window"]["end"] and len(s["tickers"]) == 4
    assert [f.name for f in s["result"].layout["plan"].folds] == ["fold_1", "fold_2"]  # the params' folds
    assert s["equal_weight_annual_turnover"] < 1.0 and s["rule_annual_turnover"] > 0


def test_the_rule_is_replayed_on_the_records_rows(studies, universe20):
    """Same bars as every lane of the record; on the null market the rule (1/N rebalanced every
    bar) tracks equal weight held, on the planted reversal it beats it."""
    null, planted = studies["null"], studies["reversal"]
    rule = replay_rule_on_record(make_market("null", universe20, 1, n_assets=4, n_bars=1350), null["result"])
    records = null["result"].record.records
    assert rule["n_bars"] == records[records["kind"] == "procedure"].iloc[0]["n_bars"]
    assert abs(null["rule_sharpe"] - null["equal_weight_sharpe"]) < 0.1
    assert planted["rule_sharpe"] > planted["equal_weight_sharpe"] + 0.3


def test_a_rule_of_other_tickers_or_an_index_is_refused(studies, universe20):
    other = make_market("null", universe20, 2, n_assets=4, n_bars=1350)
    with pytest.raises(ValueError, match="null-s2: the rule has no target"):
        replay_rule_on_record(other, studies["null"]["result"])
    market = make_market("null", universe20, 1, n_assets=4, n_bars=1350)
    params = deep_merge(_params(), {"portfolio": {"index": {"column": "SP500"}}})
    with pytest.raises(ValueError, match="portfolio.index.column to null"):
        run_universe(to_csv_frame(market.prices), params)
    shifted = dataclasses.replace(market, rule_position=market.rule_position.iloc[:-1])
    with pytest.raises(ValueError, match="no target"):
        replay_rule_on_record(shifted, studies["null"]["result"])
    assert np.isfinite(studies["null"]["rule_max_drawdown"])
