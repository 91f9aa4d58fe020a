"""``rule_report``: each rule's figures replayed like an agent's (same windows, costs,
capital and fills). At default strength every planted rule beats buy-and-hold on test."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from reinforce_strategy_creator import features as fe
from reinforce_strategy_creator.markets import (
    PLANTED_KINDS,
    REPORT_COLUMNS,
    MarketSpecError,
    make_market,
    rule_report,
)
from reinforce_strategy_creator.params.features import FeatureParams
from reinforce_strategy_creator.project_params import parameters

ENV, FE = parameters()["environment"], parameters()["feature_engineering"]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("kind", PLANTED_KINDS)
def test_the_rule_beats_buy_and_hold_on_test_at_default_strength(sp500, kind, seed):
    """Costs paid: the rule's test Sharpe is clearly positive and at least 0.5 above buy-and-hold's,
    and it comes from the planted structure: on the null market of the same real days the same
    rule earns less."""
    market = make_market(kind, sp500, seed)
    row = rule_report(market, ENV, FE, windows=("test",)).iloc[0]
    assert row["rule_sharpe"] > max(row["buy_and_hold_sharpe"], 0.0) + 0.5, row.to_dict()
    assert 0.0 < row["rule_exposure"] < 1.0 and row["rule_trades"] > 0
    null = make_market("null", sp500, seed)
    on_null = rule_report(
        dataclasses.replace(null, rule_position=market.rule(null.prices)), ENV, FE, windows=("test",)
    )
    assert on_null["rule_sharpe"].iloc[0] < row["rule_sharpe"]


def test_a_null_markets_rule_is_buy_and_hold(sp500):
    report = rule_report(make_market("null", sp500, 1), ENV, FE)
    assert list(report["window"]) == ["train", "validation", "test"]
    np.testing.assert_array_equal(report["rule_sharpe"], report["buy_and_hold_sharpe"])
    np.testing.assert_array_equal(report["rule_total_return"], report["buy_and_hold_total_return"])
    assert (report["rule_exposure"] == 1.0).all()


def _model_input_rows(index, splits=None):
    params = FeatureParams.parse(parameters()["feature_engineering"])
    if splits is not None:
        params = params.replace(splits=splits)
    lookback = fe.max_lookback(params.features)
    plan = fe.plan_splits(
        index,
        fe.validate_split_dates(params.splits),
        lookback=lookback,
        embargo_bars=fe.resolve_embargo(params.embargo_bars, lookback),
        min_split_rows=params.min_split_rows,
    )
    return {k: v["positions"] for k, v in plan.items()}


def test_windows_costs_and_fills_are_the_agents(sp500):
    """Each window is model_input_<window> replayed from bar window-1 with the project's costs and
    capital, filled at the next (real) open: buy-and-hold's total return reconciles by hand."""
    market = make_market("null", sp500, 1)
    report = rule_report(market, ENV, FE)
    env = parameters()["environment"]
    used = report.attrs["environment"]
    assert used["fill_price"] == "next_open"
    for key in ("commission_bps", "slippage_bps", "initial_capital", "window", "positions"):
        assert used[key] == (list(env[key]) if key == "positions" else env[key])
    rows = _model_input_rows(market.prices.index)
    w = int(env["window"])
    for r in report.itertuples():
        prices = market.prices.iloc[rows[r.window]]
        assert (
            r.start == prices.index[w - 1].date().isoformat() and r.end == prices.index[-1].date().isoformat()
        )
        assert r.bars == len(prices) - w
        # bought at the open after the first decision, slippage and commission paid,
        # marked at the last close
        cost = (1 + env["slippage_bps"] / 1e4) * (1 + env["commission_bps"] / 1e4)
        by_hand = prices["Close"].iloc[-1] / (prices["Open"].iloc[w] * cost) - 1.0
        assert r.buy_and_hold_total_return == pytest.approx(by_hand, rel=1e-9)


def test_costs_splits_and_environment_are_honoured(sp500):
    market = make_market("momentum", sp500, 1)
    paid = rule_report(market, ENV, FE, windows=("test",)).iloc[0]
    env = {**parameters()["environment"], "commission_bps": 0.0, "slippage_bps": 0.0}
    free = rule_report(market, env, FE, windows=("test",)).iloc[0]
    assert free["rule_total_return"] > paid["rule_total_return"]
    assert free["rule_trades"] == paid["rule_trades"]
    splits = {
        "train": {"start": None, "end": "2010-12-31"},
        "validation": {"start": "2011-01-01", "end": "2013-12-31"},
        "test": {"start": "2014-01-01", "end": "2016-12-31"},
    }
    moved = rule_report(market, ENV, FE, splits=splits, windows=("test",)).iloc[0]
    rows = _model_input_rows(market.prices.index, splits)["test"]
    assert moved["end"] == market.prices.index[rows[-1]].date().isoformat() == "2016-12-30"


def test_report_refuses_unknown_windows(sp500):
    with pytest.raises(MarketSpecError, match="windows"):
        rule_report(make_market("null", sp500, 1), ENV, FE, windows=("paper",))


def test_report_columns(sp500):
    report = rule_report(make_market("trend", sp500, 1), ENV, FE, windows=("validation",))
    assert list(report.columns) == REPORT_COLUMNS and len(report) == 1


def test_report_refuses_a_panel(universe20):
    with pytest.raises(MarketSpecError, match="single-asset markets; null-s1 has 20 tickers"):
        rule_report(make_market("null", universe20, 1), ENV, FE)
