"""Benchmarks through the real environment (env.replay): same core, costs and capital.

These tests tie the evaluation library to the env ledger format: the buy-and-hold identity,
round-trip P&L reconciliation to the cent, and a 100-seed random policy in one batched
replay.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import percentileofscore

from reinforce_strategy_creator.env import EnvConfig, MarketArrays, replay
from reinforce_strategy_creator.evaluation.benchmarks import (
    ScheduledDecision,
    SmaCrossover,
    buy_and_hold_targets,
    position_targets,
    random_targets,
)
from reinforce_strategy_creator.evaluation.metrics import evaluate_backtest, round_trips
from reinforce_strategy_creator.evaluation.stats import percentile_of
from reinforce_strategy_creator.evaluation.strategies import Prices


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def table():
    rng = np.random.default_rng(11)
    n = 300
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, n)))
    open_ = close * np.exp(rng.normal(0, 0.004, n))
    idx = pd.DatetimeIndex(pd.bdate_range("2012-01-02", periods=n), name="date")
    return pd.DataFrame(
        {
            "feat_ret": np.r_[0.0, np.diff(np.log(close))].astype("float32"),
            "Open": open_,
            "High": np.maximum(open_, close) * 1.001,
            "Low": np.minimum(open_, close) * 0.999,
            "Close": close,
            "Volume": 1e6,
        },
        index=idx,
    )


CFG = dict(
    window=5,
    positions=(-1.0, 0.0, 1.0),
    initial_capital=100_000.0,
    commission_bps=2.0,
    slippage_bps=3.0,
    borrow_bps_per_bar=0.04,
    episode_length=None,
    device="cpu",
)


def _run(table, targets, lanes=1, **changes):
    cfg = EnvConfig.from_params({**CFG, **changes})
    market = MarketArrays.from_frame(table)
    return replay(
        market, cfg, ScheduledDecision(targets, cfg.positions, first_bar=cfg.window - 1), num_envs=lanes
    )


@pytest.mark.parametrize("fill_price,reference", [("next_close", "Close"), ("next_open", "Open")])
def test_buy_and_hold_identity_through_env(table, fill_price, reference):
    res = _run(table, buy_and_hold_targets(table["Close"]), fill_price=fill_price)
    lane = res.lane(0)
    m = evaluate_backtest(lane)
    first = lane.iloc[1]  # first fill at bar W (bar W-1 is the pre-trade row)
    shares, cost0 = first["shares"], first["cost"]
    first_reference = table[reference].iloc[CFG["window"]]
    expected = shares * (table["Close"].iloc[-1] - first_reference) - cost0
    assert m["final_equity"] - CFG["initial_capital"] == pytest.approx(expected, abs=0.01)
    assert m["total_return"] == pytest.approx(expected / CFG["initial_capital"], abs=1e-7)
    assert m["total_costs"] == pytest.approx(cost0) and m["exposure"] == 1.0
    assert m["n_bars"] == len(table) - CFG["window"]


def test_trip_pnl_reconciles_through_env(table):
    t = position_targets(SmaCrossover(3, 12, long_short=True).schedule(Prices.of(table["Close"]), 0))[0]
    lane = _run(table, t).lane(0)
    trips = round_trips(lane)
    assert len(trips) > 5 and any(tr.direction == -1 for tr in trips)
    assert sum(tr.pnl for tr in trips) == pytest.approx(
        lane["equity"].iloc[-1] - CFG["initial_capital"], abs=0.01
    )


def test_random_policy_100_seeds_one_batched_replay(table):
    seeds = list(range(100))
    res = _run(table, random_targets(len(table), (-1.0, 0.0, 1.0), seeds, switch_prob=0.1), lanes=100)
    sharpes = [evaluate_backtest(res.lane(i), periods_per_year=252)["sharpe"] for i in seeds]
    assert len(sharpes) == 100 and np.isfinite(sharpes).all() and np.std(sharpes) > 0
    bh = evaluate_backtest(_run(table, buy_and_hold_targets(table["Close"])).lane(0))["sharpe"]
    # independent reference: scipy's percentileofscore (mean of the strict and weak ranks)
    assert percentile_of(bh, sharpes) == pytest.approx(percentileofscore(sharpes, bh, kind="mean"), abs=1e-12)
    # a value above / below every random Sharpe ranks 100 / 0
    assert (
        percentile_of(max(sharpes) + 1.0, sharpes) == 100.0
        and percentile_of(min(sharpes) - 1.0, sharpes) == 0.0
    )
