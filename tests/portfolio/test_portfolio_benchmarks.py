"""Benchmark replays on a universe (evaluation/replay.py ``replay_portfolio_benchmarks``): one setup
for all lanes, calendar rebalancing, the index, the optimised lanes' rules. The benchmarks' own
decisions (no look-ahead, bad parameters) are tested once at N = 1 and N > 1 in
tests/evaluation/test_benchmarks.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from reinforce_strategy_creator.env.portfolio import PortfolioInputError
from reinforce_strategy_creator.evaluation.benchmarks import (
    PORTFOLIO_BENCHMARKS,
    BenchmarkError,
    rebalance_rows,
)
from reinforce_strategy_creator.evaluation.replay import replay_portfolio_benchmarks, replay_weights
from reinforce_strategy_creator.panel import PortfolioPanel
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.portfolio import PortfolioBenchmarkParams
from tests.support.env import universe_env

torch.set_num_threads(1)

TICKERS = ("AAA", "BBB", "CCC", "DDD")
CFG = universe_env(window=4, commission_bps=5.0, slippage_bps=3.0)
FAST = {"lookback": 30, "min_history": 10}


def make_close(n_bars: int = 120, seed: int = 0, late: int = 40, start: str = "2020-01-15") -> pd.DataFrame:
    """Random-walk closes on business days; DDD lists at row ``late`` (NaN before)."""
    rng = np.random.default_rng(seed)
    drift = np.array([0.0008, 0.0002, -0.0003, 0.0005])
    vol = np.array([0.02, 0.01, 0.015, 0.025])
    rets = drift + vol * rng.standard_normal((n_bars, len(TICKERS)))
    close = 50.0 * np.exp(np.cumsum(rets, axis=0))
    close[:late, 3] = np.nan
    dates = pd.bdate_range(start, periods=n_bars)
    return pd.DataFrame(close, index=dates, columns=list(TICKERS))


def make_panel(close: pd.DataFrame) -> PortfolioPanel:
    T, N = close.shape
    return PortfolioPanel(
        close.to_numpy(), np.zeros((T, N, 1), np.float32), tuple(close.columns), close.index
    )


def index_of(close: pd.DataFrame) -> pd.Series:
    return close[["AAA", "BBB", "CCC"]].mean(axis=1).rename("IDX")


def by_name(runs):
    return {name: (kind, seeds, run) for kind, name, seeds, run in runs}


@pytest.fixture(scope="module")
def close():
    return make_close()


@pytest.fixture(scope="module")
def runs(close):
    return replay_portfolio_benchmarks(make_panel(close), CFG, FAST, index_of(close))


def test_every_benchmark_and_the_random_lanes_are_replayed(runs):
    names = [name for _, name, _, _ in runs]
    assert names == [*PORTFOLIO_BENCHMARKS, "random"]
    got = by_name(runs)
    assert all(got[n][0] == "benchmark" and got[n][1] == [0] for n in PORTFOLIO_BENCHMARKS)
    kind, seeds, rand = got["random"]
    assert kind == "random" and seeds == list(range(100)) and rand.n_lanes == 100


@pytest.mark.parametrize("tickers", [["AAA"], list(TICKERS)], ids=["N=1", "N=4"])
def test_all_lanes_share_capital_costs_and_dates(close, tickers):
    """Every benchmark lane pays the agents' costs on the agents' capital, at N = 1 and N > 1."""
    runs = replay_portfolio_benchmarks(make_panel(close[tickers]), CFG, FAST, index_of(close))
    ref = by_name(runs)["buy_and_hold"][2]
    for _, name, _, run in runs:
        for key in ("initial_capital", "commission_bps", "slippage_bps", "borrow_bps_per_bar", "window"):
            assert getattr(run.config, key) == getattr(CFG, key), (name, key)
        assert np.all(run.equity[:, 0] == CFG.initial_capital), name
        assert run.dates.equals(ref.dates), name
    # costs are charged at the configured rates: commission 5 bps of the filled notional, slippage
    # 3 bps of the traded notional at the close
    for _, name, _, run in runs:
        filled = np.nansum(np.abs(run.traded_shares) * np.nan_to_num(run.fill_price), axis=2)
        np.testing.assert_allclose(run.commission, filled * 5e-4, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(run.slippage, run.traded_notional * 3e-4, rtol=1e-9, atol=1e-9)


def test_rebalance_rows_are_the_first_bar_of_each_month(close):
    flags = rebalance_rows(close.index, 3, "monthly")
    d = close.index
    expect = np.zeros(len(d), bool)
    expect[3] = True
    expect[4:] = d.month[4:] != d.month[3:-1]
    np.testing.assert_array_equal(flags, expect)
    assert flags.sum() == 1 + len(set(zip(d.year[4:], d.month[4:])) - {(d.year[3], d.month[3])})
    q = rebalance_rows(close.index, 3, "quarterly")
    assert set(np.flatnonzero(q)) <= set(np.flatnonzero(flags))


@pytest.mark.parametrize("name", ["equal_weight", "min_variance", "max_sharpe", "random"])
def test_rebalanced_lanes_trade_only_at_month_starts(runs, close, name):
    run = by_name(runs)[name][2]
    flags = rebalance_rows(close.index, CFG.window - 1, "monthly")
    decided = flags[run.bars[:-1]]  # the decision of fill row s+1 was taken at bar bars[s]
    traded = run.traded_notional[:, 1:] > 0
    assert not traded[:, ~decided].any(), "traded between rebalances"
    assert np.all(run.cost[:, 1:][:, ~decided] == 0.0), "paid costs between rebalances"
    assert np.isnan(run.targets[:, :-1][:, ~decided]).all(), "between rebalances the lane must HOLD"
    assert traded[:, decided].any(axis=1).all()
    if name in ("equal_weight", "random"):
        assert traded[:, decided].all(), "every rebalance trades (weights drifted)"


def test_equal_weight_targets_the_tradable_tickers_equally(runs, close):
    run = by_name(runs)["equal_weight"][2]
    flags = rebalance_rows(close.index, CFG.window - 1, "monthly")
    for s, bar in enumerate(run.bars[:-1]):
        if flags[bar]:
            tradable = np.isfinite(close.to_numpy()[bar])
            np.testing.assert_allclose(run.targets[0, s], np.where(tradable, 1 / tradable.sum(), 0.0))


@pytest.mark.parametrize("name", ["buy_and_hold", "index"])
def test_buy_and_hold_trades_once(runs, close, name):
    run = by_name(runs)[name][2]
    fills = (run.traded_shares[0] != 0).sum(axis=1)
    assert fills[1] == run.shares.shape[2] - (1 if name == "buy_and_hold" else 0)  # DDD not listed yet
    assert fills[2:].sum() == 0 and np.all(run.cost[0, 2:] == 0.0)
    assert np.all(run.shares[0, 2:] == run.shares[0, 1])
    if name == "buy_and_hold":
        first = np.isfinite(close.to_numpy()[CFG.window - 1])
        np.testing.assert_allclose(run.targets[0, 0], np.where(first, 1 / first.sum(), 0.0))
        assert run.shares[0, -1, 3] == 0.0, "a ticker listed later is never bought"


def test_index_lane_is_the_index_bought_and_held(runs, close):
    run = by_name(runs)["index"][2]
    idx = index_of(close).to_numpy()
    assert run.tickers == ("IDX",)
    np.testing.assert_allclose(run.close[:, 0], idx[run.bars])
    # from the fill on: equity = cash + shares x index close, cash constant
    eq = run.cash[0, 1:] + run.shares[0, 1:, 0] * idx[run.bars[1:]]
    np.testing.assert_allclose(run.equity[0, 1:], eq, rtol=1e-12)
    assert run.equity[0, -1] / run.equity[0, 1] == pytest.approx(
        (run.cash[0, 1] + run.shares[0, 1, 0] * idx[run.bars[-1]]) / run.equity[0, 1]
    )


def test_min_variance_has_lower_trailing_variance_than_equal_weight(runs, close):
    run = by_name(runs)["min_variance"][2]
    sharpe_run = by_name(runs)["max_sharpe"][2]
    fitted = set(runs.events.loc[runs.events["run"] == "min_variance", "bar"])
    c = close.to_numpy()
    checked = 0
    for s, bar in enumerate(run.bars[:-1]):
        w = run.targets[0, s]
        if np.isnan(w).any() or bar in fitted:
            continue
        past = c[max(0, bar - FAST["lookback"]) : bar + 1]
        full = np.isfinite(past).all(axis=0)
        r = past[1:, full] / past[:-1, full] - 1.0
        assert np.all(w[~full] == 0.0), "a ticker without a full window got weight"
        ew = np.full(full.sum(), 1.0 / full.sum())
        assert np.var(r @ w[full]) <= np.var(r @ ew) * (1 + 1e-6)
        ws = sharpe_run.targets[0, s][full]
        if ws.sum() > 0:  # max Sharpe beats equal weight in sample, at fit time
            pr, pe = r @ ws, r @ ew
            assert pr.mean() / pr.std() >= pe.mean() / pe.std() - 1e-6
        checked += 1
    assert checked >= 3


def test_random_lanes_differ_by_seed_and_reproduce_by_seed(close):
    panel = make_panel(close)
    a = by_name(replay_portfolio_benchmarks(panel, CFG, {**FAST, "names": ["buy_and_hold", "random"]}))
    b = by_name(
        replay_portfolio_benchmarks(
            panel, CFG, {**FAST, "names": ["buy_and_hold", "random"], "random_seed": 7}
        )
    )
    ra, rb = a["random"][2], b["random"][2]
    assert b["random"][1][0] == 7
    np.testing.assert_array_equal(ra.targets[7], rb.targets[0])
    np.testing.assert_array_equal(ra.equity[7], rb.equity[0])
    first = ra.targets[:, 0]
    assert len({tuple(np.round(row, 12)) for row in first}) == ra.n_lanes
    assert np.all(first[:, 3] == 0.0), "DDD is not tradable at the first decision"
    np.testing.assert_allclose(np.nansum(first, axis=1), 1.0)


def test_history_close_feeds_the_fit_and_must_agree_with_the_panel():
    full = make_close(200, seed=3, late=0)
    panel = make_panel(full.iloc[120:])
    without = replay_portfolio_benchmarks(panel, CFG, {**FAST, "names": ["buy_and_hold", "min_variance"]})
    assert (without.events["event"] == "warmup_equal_weight").any()
    with_hist = replay_portfolio_benchmarks(
        panel, CFG, {**FAST, "names": ["buy_and_hold", "min_variance"]}, history_close=full
    )
    assert with_hist.events.empty
    bad = full.copy()
    bad.iloc[150, 1] *= 1.01
    with pytest.raises(BenchmarkError, match=r"'BBB'.*2020"):
        replay_portfolio_benchmarks(panel, CFG, FAST, history_close=bad)


def test_warmup_and_no_positive_return_rules_are_counted():
    close = make_close(90, seed=1, late=0)
    falling = close * np.exp(-0.01 * np.arange(len(close)))[:, None]
    runs = replay_portfolio_benchmarks(
        make_panel(falling), CFG, {"lookback": 30, "min_history": 20, "names": ["buy_and_hold", "max_sharpe"]}
    )
    ev = runs.events
    assert set(ev["event"]) == {"warmup_equal_weight", "no_positive_return"}
    run = by_name(runs)["max_sharpe"][2]
    cash_rows = [
        int(np.searchsorted(run.bars, b)) for b in ev.loc[ev["event"] == "no_positive_return", "bar"]
    ]
    assert cash_rows and all(np.all(run.targets[0, s] == 0.0) for s in cash_rows)
    assert run.shares[0, -1].sum() == 0.0


def test_a_solver_failure_is_an_error_naming_the_date(monkeypatch, close):
    from skfolio.optimization import MeanRisk

    def boom(self, X, y=None, **kw):
        raise RuntimeError("solver status: infeasible")

    monkeypatch.setattr(MeanRisk, "fit", boom)
    with pytest.raises(BenchmarkError, match=r"min_variance.*rebalance on 2020-\d\d-\d\d.*infeasible"):
        replay_portfolio_benchmarks(
            make_panel(close), CFG, {**FAST, "names": ["buy_and_hold", "min_variance"]}
        )


def test_index_must_cover_the_panel_dates(close):
    idx = index_of(close).drop(close.index[50])
    with pytest.raises(BenchmarkError, match=r"IDX.*no positive close on " + str(close.index[50].date())):
        replay_portfolio_benchmarks(make_panel(close), CFG, FAST, idx)
    with pytest.raises(BenchmarkError, match="DatetimeIndex"):
        replay_portfolio_benchmarks(make_panel(close), CFG, FAST, index_of(close).reset_index(drop=True))


@pytest.mark.parametrize(
    "raw, where",
    [
        ({"lookback": 1}, "portfolio.benchmarks.lookback"),
        ({"n_random_seeds": 50}, "portfolio.benchmarks.n_random_seeds"),
        ({"rebalance": "daily"}, "portfolio.benchmarks.rebalance"),
        ({"names": ["equal_weight"]}, "buy_and_hold"),
        ({"names": ["buy_and_hold", "sixty_forty"]}, "portfolio.benchmarks.names"),
        ({"min_history": 300}, "min_history"),
        ({"random_seed": -1}, "portfolio.benchmarks.random_seed"),
        ({"lookbak": 10}, "unknown parameter"),
    ],
)
def test_bad_parameters_name_the_parameter(raw, where):
    with pytest.raises(ParameterError, match=where):
        PortfolioBenchmarkParams.parse(raw)


@pytest.mark.parametrize(
    "weights, match",
    [
        (np.array([[0.2, np.nan, 0.2, 0.0]]), r"ticker 'BBB'.*finite"),
        (np.array([[0.2, 0.2, -0.1, 0.0]]), r"ticker 'CCC'.*< 0"),
        (np.array([[0.2, 0.2, 0.2, 0.2]]), r"ticker 'DDD' is not tradable"),
        (np.array([[0.6, 0.6, 0.0, 0.0]]), r"add up to 1.2"),
    ],
)
def test_bad_weights_from_a_decider_are_errors_naming_the_ticker(close, weights, match):
    with pytest.raises(PortfolioInputError, match=match):
        replay_weights(make_panel(close), CFG, lambda obs, bar: weights, 1)
