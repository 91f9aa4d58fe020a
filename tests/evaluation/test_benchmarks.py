"""Every benchmark through the one strategy interface, at N = 1 and N > 1: hand examples, no
look-ahead, decide = schedule, seeded randomness, bad input named, the single-asset adapter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.evaluation.benchmarks import (
    BenchmarkError,
    BuyAndHold,
    EqualWeight,
    Flat,
    MeanRisk,
    Momentum,
    RandomPositions,
    RandomWeights,
    ScheduledDecision,
    SmaCrossover,
    position_targets,
    random_targets,
    targets_to_actions,
)
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError
from reinforce_strategy_creator.evaluation.replay import replay_strategies
from reinforce_strategy_creator.evaluation.strategies import Prices, Strategy, StrategyInputError
from reinforce_strategy_creator.panel import PortfolioPanel
from tests.support.env import universe_env

torch.set_num_threads(1)


def prices(n_assets: int, n_bars: int = 90, seed: int = 0, late: int = 30, start: int = 0) -> Prices:
    """Random-walk closes on business days; with N > 1 the last asset lists at row ``late``."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(0.0003 + 0.02 * rng.standard_normal((n_bars, n_assets)), axis=0))
    if n_assets > 1:
        close[:late, -1] = np.nan
    tickers = tuple(f"T{i}" for i in range(n_assets))
    return Prices(close, pd.bdate_range("2020-01-15", periods=n_bars), tickers, start)


def every_benchmark(n_assets: int) -> list[Strategy]:
    out = [
        BuyAndHold(),
        EqualWeight("monthly"),
        EqualWeight("weekly"),
        Flat(),
        SmaCrossover(3, 10, long_short=True),
        Momentum(5, long_short=True),
        MeanRisk("min_variance", lookback=20, min_history=5),
        MeanRisk("max_sharpe", lookback=20, min_history=5),
        RandomWeights(range(5)),
    ]
    if n_assets == 1:
        out.append(RandomPositions((-1.0, 0.0, 1.0), range(5), switch_prob=0.2))
    return out


def one(close) -> Prices:
    return Prices.of(np.asarray(close, dtype=float))


# --------------------------------------------------------------------------- hand examples, N = 1
def test_constant_benchmarks():
    p = one([10.0, 11.0, 12.0])
    assert position_targets(BuyAndHold().schedule(p, 0))[0].tolist() == [1, 1, 1]
    assert position_targets(Flat().schedule(p, 0))[0].tolist() == [0, 0, 0]
    # before the first decision nothing is decided; holding repeats the last decision
    assert np.isnan(BuyAndHold().schedule(p, 1)[0, :, 0]).tolist() == [True, False, True]
    assert position_targets(BuyAndHold().schedule(p, 1))[0].tolist() == [0, 1, 1]


def test_sma_crossover_hand():
    p = one([5, 4, 3, 4, 5, 6, 5, 4, 3])
    # SMA2: -, 4.5, 3.5, 3.5, 4.5, 5.5, 5.5, 4.5, 3.5 ; SMA3: -, -, 4, 3.667, 4, 5, 5.333, 5, 4
    assert SmaCrossover(2, 3).schedule(p, 0)[0, :, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert SmaCrossover(2, 3, True).schedule(p, 0)[0, :, 0].tolist() == [0, 0, -1, -1, 1, 1, 1, -1, -1]


def test_momentum_hand():
    p = one([10, 11, 9, 12, 12, 8])
    # 2-bar return: -, -, -0.1, +0.0909, +0.333, -0.333
    assert Momentum(2).schedule(p, 0)[0, :, 0].tolist() == [0, 0, 0, 1, 1, 0]
    assert Momentum(2, long_short=True).schedule(p, 0)[0, :, 0].tolist() == [0, 0, -1, 1, 1, -1]


def test_signals_at_n_assets_are_per_asset_and_weighted_by_the_listed_assets():
    """Each asset gets its own one-asset signal, divided by the number of assets listed at the bar."""
    p = prices(3, late=30)
    for strategy in (SmaCrossover(3, 10, True), Momentum(5, True)):
        w = strategy.schedule(p, 0)[0]
        for j in range(3):
            c = p.close[:, j]
            listed = np.isfinite(c)
            alone = strategy.schedule(one(c[listed]), 0)[0, :, 0]
            k = np.isfinite(p.close[listed]).sum(axis=1)
            np.testing.assert_allclose(w[listed, j], alone / k)
        assert np.all(w[:30, 2] == 0.0), "an asset before its listing gets no weight"


# --------------------------------------------------------------------------- the interface
@pytest.mark.parametrize("n_assets", [1, 4])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), first=st.integers(0, 25), data=st.data())
def test_schedules_are_causal(n_assets, seed, first, data):
    """For every benchmark: changing the closes after bar t leaves every decision up to t (and the
    rules applied up to t) unchanged, and ``decide`` at t (given the closes up to t only) equals the
    schedule at t."""
    p = prices(n_assets, seed=seed)
    t = data.draw(st.integers(first, p.n_bars - 2))
    rng = np.random.default_rng(seed + 1)
    changed = p.close.copy()
    changed[t + 1 :] *= np.exp(0.3 * rng.standard_normal(changed[t + 1 :].shape))
    q = Prices(changed, p.dates, p.tickers)
    for strategy in every_benchmark(n_assets):
        a = strategy.schedule(p, first)
        events = [e for e in strategy.events if e["bar"] <= t]
        b = strategy.schedule(q, first)
        assert a.shape == (strategy.lanes, p.n_bars, n_assets), strategy.name
        assert np.isnan(a[:, :first]).all(), f"{strategy.name} decided before the first decision"
        np.testing.assert_array_equal(a[:, : t + 1], b[:, : t + 1], err_msg=strategy.name)
        assert [e for e in strategy.events if e["bar"] <= t] == events, strategy.name
        np.testing.assert_array_equal(strategy.decide(p, t, first), a[:, t], err_msg=strategy.name)


@pytest.mark.parametrize("n_assets", [1, 4])
def test_weights_are_on_listed_assets_and_at_most_fully_invested(n_assets):
    p = prices(n_assets)
    for strategy in every_benchmark(n_assets):
        w = strategy.schedule(p, 5)[:, 5:]
        decided = ~np.isnan(w).all(axis=2)
        assert decided[:, 0].all(), f"{strategy.name} holds at its first decision"
        assert not np.isnan(w[decided]).any(), strategy.name
        assert np.all(np.abs(w[decided]).sum(axis=1) <= 1 + 1e-9), strategy.name
        unlisted = ~np.isfinite(p.close[5:])
        assert np.all(np.where(unlisted[None] & decided[..., None], w, 0.0) == 0.0), strategy.name


def test_equal_weight_at_one_asset_is_buy_and_hold():
    """At N = 1 equal weight decides 1 wherever it rebalances, buy-and-hold 1 once: the same
    positions, and the same account through the execution kernel."""
    p = prices(1, n_bars=120)
    for rebalance in ("weekly", "monthly", "quarterly"):
        ew = position_targets(EqualWeight(rebalance).schedule(p, 3))
        np.testing.assert_array_equal(ew, position_targets(BuyAndHold().schedule(p, 3)))
    panel = PortfolioPanel(p.close, np.zeros((p.n_bars, 1, 1), np.float32), p.tickers, p.dates)
    cfg = universe_env(window=4, commission_bps=5.0, slippage_bps=3.0)
    ew, bh = replay_strategies(panel, cfg, [EqualWeight("weekly"), BuyAndHold()], p)
    np.testing.assert_allclose(ew.equity, bh.equity, rtol=0, atol=0.005)
    np.testing.assert_allclose(ew.cost.sum(), bh.cost.sum(), rtol=0, atol=0.005)


@pytest.mark.parametrize("n_assets", [1, 4])
def test_random_lanes_reproduce_by_seed_and_differ_by_seed(n_assets):
    p = prices(n_assets, n_bars=300)
    cases = [(lambda s: RandomWeights(s, "weekly"))]
    if n_assets == 1:
        cases.append(lambda s: RandomPositions((-1.0, 0.0, 1.0), s, switch_prob=0.5))
    for make in cases:
        a, b = make(range(20)).schedule(p, 3), make([7]).schedule(p, 3)
        np.testing.assert_array_equal(a[7], b[0])
        decided = a[:, 3:][~np.isnan(a[:, 3:]).all(axis=2)]
        assert len({row.tobytes() for row in a[:, 3:]}) == 20, "distinct seeds, distinct paths"
        assert decided.size


def test_random_positions_switch_at_the_given_rate_from_the_window_start():
    """(Prefix stability: tests/pipelines/evaluation/test_nodes.py::test_random_policy_is_prefix_stable.)"""
    a = random_targets(500, (0.0, 1.0), seeds=range(100))
    assert a.shape == (100, 500) and set(np.unique(a)) == {0.0, 1.0}
    slow = random_targets(2000, (0.0, 1.0), seeds=[1], switch_prob=0.05)[0]
    assert 10 < np.count_nonzero(np.diff(slow)) < 100  # about 2000 * 0.05 * 0.5 = 50
    # the draws start at the replayed window (Prices.start), whatever history comes before it
    p = prices(1, n_bars=60, start=20)
    got = RandomPositions((0.0, 1.0), [3]).schedule(p, 25)[0, 25:, 0]
    np.testing.assert_array_equal(got, random_targets(40, (0.0, 1.0), [3])[0, 5:])


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: SmaCrossover(3, 3), "sma_fast"),
        (lambda: SmaCrossover(0, 3), "sma_fast"),
        (lambda: Momentum(0), "momentum_lookback"),
        (lambda: RandomPositions((0.0, 1.0), [1, 1]), "distinct"),
        (lambda: RandomPositions((), [1]), "random_positions"),
        (lambda: RandomPositions((0.0, 1.0), [1], switch_prob=0.0), "random_switch_prob"),
        (lambda: EqualWeight("daily"), "portfolio.benchmarks.rebalance"),
        (lambda: MeanRisk("max_return"), "objective"),
        (lambda: MeanRisk("min_variance", lookback=0), "portfolio.benchmarks.lookback"),
        (lambda: Prices(np.array([[1.0, -2.0]]), pd.DatetimeIndex(["2021-03-01"]), ("A", "B")), r"'B'.*2021"),
        (lambda: Prices(np.ones((2, 2)), pd.bdate_range("2021", periods=2), ("A",)), "1 tickers"),
        (lambda: BuyAndHold().schedule(prices(2), 90), "first decision row 90"),
        (lambda: BuyAndHold().decide(prices(2), 3, 5), "bar 3"),
        (lambda: RandomPositions((0.0, 1.0), [1]).schedule(prices(2), 0), "RandomWeights"),
        (lambda: position_targets(np.zeros((1, 3, 2))), "one-asset"),
    ],
)
def test_bad_input_is_an_error_naming_it(make, match):
    with pytest.raises(EvaluationInputError, match=match):
        make()
    assert issubclass(BenchmarkError, StrategyInputError)


# --------------------------------------------------------------------------- the single-asset kernel
def test_targets_to_actions_and_decide_adapter():
    pos = (-1.0, 0.0, 1.0)
    assert targets_to_actions([1.0, 0.0, -1.0], pos).tolist() == [2, 1, 0]
    with pytest.raises(EvaluationInputError, match="0.5"):
        targets_to_actions([0.5], pos)
    d = ScheduledDecision(np.array([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, -1.0, 1.0]]), pos, first_bar=1)
    obs = torch.zeros((2, 3))
    assert d(obs).tolist() == [2, 1]
    assert d(obs).tolist() == [2, 0]
    assert d(obs).dtype == torch.long
    with pytest.raises(EvaluationInputError, match="schedule has only 4 bars"):
        d(obs)
    cont = ScheduledDecision(np.array([0.0, 0.25, 1.0]), None, first_bar=0)
    out = cont(torch.zeros((3, 2)))  # one schedule broadcast to 3 lanes
    assert out.dtype == torch.float32 and out.tolist() == [0.0, 0.0, 0.0]
