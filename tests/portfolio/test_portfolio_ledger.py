"""Portfolio ledgers (evaluation/ledger.py) read by the existing evaluation (metrics, split_records)."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.candidates import ENSEMBLE_SEED
from reinforce_strategy_creator.env.portfolio import PortfolioInputError
from reinforce_strategy_creator.evaluation.ledger import (
    RUN_LEDGER_COLUMNS,
    WEIGHTS_LEDGER_COLUMNS,
    contributions_wide,
    portfolio_ledger,
    run_ledger,
    weights_ledger,
    weights_wide,
)
from reinforce_strategy_creator.evaluation.metrics import (
    EvaluationInputError,
    evaluate_backtest,
    round_trips,
    trade_metrics,
)
from reinforce_strategy_creator.evaluation.replay import (
    PortfolioRun,
    lane_run,
    replay_portfolio_benchmarks,
    replay_weights,
)
from reinforce_strategy_creator.evaluation.results import split_records
from reinforce_strategy_creator.panel import PortfolioPanel
from tests.support.env import universe_env

torch.set_num_threads(1)

TICKERS = ("AAA", "BBB", "CCC")
CFG = universe_env(window=5, commission_bps=4.0, slippage_bps=2.0)


def make_panel(n_bars: int = 150, seed: int = 0) -> PortfolioPanel:
    rng = np.random.default_rng(seed)
    rets = np.array([0.0006, 0.0001, 0.0003]) + np.array([0.015, 0.01, 0.02]) * rng.standard_normal(
        (n_bars, 3)
    )
    close = 20.0 * np.exp(np.cumsum(rets, axis=0))
    close[:30, 2] = np.nan  # CCC lists later
    dates = pd.bdate_range("2021-03-01", periods=n_bars)
    return PortfolioPanel(close, np.zeros((n_bars, 3, 1), np.float32), TICKERS, dates)


def agent_decider(panel: PortfolioPanel):
    """Two constant-weight 'agent' lanes (seeds 0 and 1): 50/50 in AAA/BBB, and 30/30/30 once CCC
    lists, re-targeted every bar (so they trade small drifts every bar)."""

    def decide(obs, bar):
        w = np.array([[0.5, 0.5, 0.0], [0.3, 0.3, 0.3]])
        if not np.isfinite(panel.close[bar, 2]):
            w[1] = [0.45, 0.45, 0.0]
        return w

    return decide


@pytest.fixture(scope="module")
def setup():
    panel = make_panel()
    bench = replay_portfolio_benchmarks(panel, CFG, {"lookback": 40, "min_history": 10})
    agent = replay_weights(panel, CFG, agent_decider(panel), 2)
    runs = [("agent", "constant", [0, 1], agent), *bench]
    return panel, runs, portfolio_ledger(runs, "test")


def test_run_ledger_columns_seeds_and_kinds(setup):
    _, runs, ledger = setup
    assert tuple(ledger.columns) == RUN_LEDGER_COLUMNS
    agent = runs[0][3]
    one = run_ledger(agent, "agent", "constant", [3, ENSEMBLE_SEED], "validation")
    assert set(one["split"]) == {"validation"}
    assert one.groupby("seed")["kind"].first().to_dict() == {3: "agent", ENSEMBLE_SEED: "ensemble"}
    assert len(one) == 2 * len(agent.dates)
    lane1 = one[one["seed"] == ENSEMBLE_SEED]
    np.testing.assert_array_equal(lane1["equity"].to_numpy(), agent.equity[1])
    np.testing.assert_array_equal(lane1["n_fills"].to_numpy(), (agent.traded_shares[1] != 0).sum(1))
    with pytest.raises(PortfolioInputError, match="3 seeds given for 2 lanes"):
        run_ledger(agent, "agent", "constant", [0, 1, 2])
    assert set(ledger["kind"]) == {"agent", "benchmark", "random"}
    assert ledger.groupby(["run", "seed"])["equity"].first().eq(CFG.initial_capital).all()


def test_a_lane_of_a_run_is_that_lane_of_every_field_with_a_lane_axis(setup):
    run = setup[1][0][3]
    assert run.n_lanes == 2 and len(run.dates) != 2 and len(run.tickers) != 2
    one = lane_run(run, [1])
    for f in fields(PortfolioRun):
        value, got = getattr(run, f.name), getattr(one, f.name)
        if isinstance(value, np.ndarray) and value.shape[0] == run.n_lanes:
            np.testing.assert_array_equal(got, value[[1]], err_msg=f.name)
        else:
            assert got is value, f.name


def test_ledgers_reconcile_to_the_cent(setup):
    panel, runs, _ = setup
    for kind, name, seeds, run in runs[:3]:
        led = run_ledger(run, kind, name, seeds)
        w = weights_ledger(run, kind, name, seeds)
        assert tuple(w.columns) == WEIGHTS_LEDGER_COLUMNS
        close = pd.Series(
            panel.close.ravel(), index=pd.MultiIndex.from_product([range(panel.n_bars), TICKERS])
        )
        value = (
            w["shares"]
            * close.reindex(pd.MultiIndex.from_arrays([w["bar"], w["ticker"]])).fillna(0).to_numpy()
        )
        held = value.groupby([w["seed"].to_numpy(), w["bar"].to_numpy()]).sum().to_numpy()
        np.testing.assert_allclose(led["cash"].to_numpy() + held, led["equity"].to_numpy(), atol=0.005)
        contrib = w.groupby(["seed", "bar"])["contribution"].sum().to_numpy()
        d_eq = led.groupby("seed")["equity"].diff().fillna(0.0).to_numpy()
        np.testing.assert_allclose(contrib - led["cost"].to_numpy(), d_eq, atol=0.005)


def test_wide_frames_match_the_run(setup):
    _, runs, ledger = setup
    kind, name, seeds, run = runs[0]
    w = weights_ledger(run, kind, name, seeds)
    wide = weights_wide(w, name, 1)
    expect = run.weights_frame(1)
    np.testing.assert_allclose(wide.to_numpy(), expect.to_numpy(), atol=1e-12)
    assert list(wide.columns) == list(expect.columns)
    cw = contributions_wide(w, ledger, name, 1)
    np.testing.assert_allclose(cw.to_numpy(), run.contributions(1).to_numpy(), atol=1e-9)


def test_split_records_works_on_a_portfolio_ledger(setup):
    _, runs, ledger = setup
    rec = split_records(ledger, "test")
    assert len(rec) == 2 + 4 + 100  # agent seeds, deterministic benchmarks (no index), random lanes
    assert set(rec["kind"]) == {"agent", "benchmark", "random"}
    bh = rec[rec["agent"] == "buy_and_hold"].iloc[0]
    assert bh["beta"] == pytest.approx(1.0) and bh["psr"] == pytest.approx(0.5)
    agents = rec[rec["kind"] == "agent"]
    assert agents["dsr"].notna().all() and agents["random_percentile"].between(0, 100).all()
    for col in ("sharpe", "total_return", "max_drawdown", "turnover", "exposure", "total_costs"):
        assert np.isfinite(rec[col].to_numpy(dtype=float)).all(), col
    assert rec[["win_rate", "profit_factor", "avg_holding_bars"]].isna().all().all()
    # the metrics are the ledger's: total return from equity, costs and fills summed
    for r in rec.itertuples():
        lane = ledger[(ledger["run"] == r.agent) & (ledger["seed"] == r.seed)]
        eq = lane["equity"].to_numpy()
        assert r.total_return == pytest.approx(eq[-1] / eq[0] - 1.0, rel=1e-9)
        assert r.total_costs == pytest.approx(lane["cost"].sum(), rel=1e-12)
        assert r.n_trades == lane["n_fills"].sum()
    n_bh = rec.set_index("agent").loc["buy_and_hold", "n_trades"]
    assert n_bh == 2  # AAA and BBB once: CCC was not listed at the first decision


def test_portfolio_trade_metrics_by_hand():
    dates = pd.bdate_range("2022-01-03", periods=5)
    frame = pd.DataFrame(
        {
            "date": dates,
            "equity": [100.0, 99.0, 101.0, 103.0, 102.0],
            "cash": [100.0, 1.0, 1.0, 52.0, 102.0],
            "cost": [0.0, 1.0, 0.0, 0.5, 0.5],
            "traded_notional": [0.0, 98.0, 0.0, 50.0, 50.0],
            "gross_exposure": [0.0, 98 / 99, 100 / 101, 51 / 103, 0.0],
            "n_positions": [0, 2, 2, 1, 0],
            "n_fills": [0, 2, 0, 1, 1],
        }
    )
    m = trade_metrics(frame, periods_per_year=252)
    mean_eq = np.mean([99.0, 101.0, 103.0, 102.0])
    assert m["turnover"] == pytest.approx(198.0 / mean_eq)
    assert m["annual_turnover"] == pytest.approx(198.0 / mean_eq * 252 / 4)
    assert m["exposure"] == pytest.approx(0.75)
    assert m["avg_gross_exposure"] == pytest.approx(np.mean([98 / 99, 100 / 101, 51 / 103, 0.0]))
    assert m["total_costs"] == pytest.approx(2.0)
    assert m["n_trades"] == 4 and m["n_open_trades"] == 0
    assert all(np.isnan(m[k]) for k in ("win_rate", "profit_factor", "avg_holding_bars", "open_trade_pnl"))
    full = evaluate_backtest(frame, periods_per_year=252)
    assert full["total_return"] == pytest.approx(0.02) and full["final_equity"] == 102.0
    with pytest.raises(EvaluationInputError, match="round trips"):
        round_trips(frame)
    bad = frame.assign(traded_notional=[0.0, np.nan, 0.0, 50.0, 50.0])
    with pytest.raises(EvaluationInputError, match="'traded_notional'.*row 1"):
        evaluate_backtest(bad)
    not_flat = frame.assign(n_positions=[1, 2, 2, 1, 0])
    with pytest.raises(EvaluationInputError, match="pre-trade row"):
        evaluate_backtest(not_flat)


def test_portfolio_ledger_refuses_other_costs_or_dates(setup):
    panel, runs, _ = setup
    kind, name, seeds, run = runs[0]
    dearer = replace(run, config=run.config.replace(commission_bps=9.0))
    with pytest.raises(PortfolioInputError, match="commission_bps=9.0.*one environment"):
        portfolio_ledger([runs[1], (kind, name, seeds, dearer)])
    shorter = replay_weights(panel.rows(0, 100), CFG, agent_decider(panel), 2)
    with pytest.raises(PortfolioInputError, match="same panel window"):
        portfolio_ledger([runs[1], (kind, name, seeds, shorter)])
