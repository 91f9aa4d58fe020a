"""The cross-sectional kinds (N >= 2, docs/markets.md): a short reversal, the rotation, a slow
momentum and a lead-lag. Each plants exactly its stated drift (the ranked kinds a relative one on
the trailing selection of the market being built), ``strength = 0`` is the null market, and its
rule beats equal weight after costs on planted markets only. Causality of the rules and bad
parameters: test_planted.py and test_markets.py, with every other kind."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.evaluation.replay import ScheduleDecider, replay_weights
from reinforce_strategy_creator.markets import (
    UNIVERSE_KINDS,
    MarketSpecError,
    hold_followers_after_leader_up,
    hold_trailing_ranked,
    make_market,
    null_market,
    trailing_ranked,
)
from reinforce_strategy_creator.panel import PortfolioPanel
from tests.support.env import universe_env

torch.set_num_threads(1)
COSTS = universe_env(window=1, commission_bps=1.0, slippage_bps=2.0)
SEEDS = (0, 1, 2)
#: each kind's defaults: strength, then its other parameters (and whether it ranks the worst)
DEFAULTS = {
    "reversal": (0.008, {"lookback": 5, "hold": 5, "n_selected": 2}, True),
    "rotation": (0.003, {"lookback": 20, "hold": 5, "n_selected": 1}, False),
    "slow_momentum": (0.005, {"lookback": 60, "hold": 20, "n_selected": 2}, False),
    "lead_lag": (0.3, {"hold": 2}, None),
}
RANKED = tuple(k for k in UNIVERSE_KINDS if k != "lead_lag")


def _log_moves(close: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(close.to_numpy(dtype=np.float64)), axis=0)


@pytest.mark.parametrize("kind", UNIVERSE_KINDS)
def test_strength_zero_is_the_null_market_and_the_drift_is_relative(universe20, kind):
    a = make_market(kind, universe20, 7, n_assets=5, n_bars=500)
    strength, params, _ = DEFAULTS[kind]
    if kind == "lead_lag":
        params = {**params, "leader": a.close.columns[0]}
    assert a.close.shape == (500, 5) and a.params == params and a.strength == strength
    zero = make_market(kind, universe20, 7, n_assets=5, n_bars=500, strength=0.0)
    null = null_market(universe20[list(a.close.columns)], 7, n_bars=500)
    np.testing.assert_allclose(zero.close.to_numpy(), null.close.to_numpy(), rtol=1e-12)
    diff = _log_moves(a.close) - _log_moves(null.close)
    assert np.abs(diff).max() > 0
    if kind in RANKED:  # a ranked drift keeps the cross-sectional mean log move of every real day
        np.testing.assert_allclose(diff.sum(axis=1), 0.0, atol=1e-12)


#: small settings per kind, so that the bar-by-bar check meets many changes of the selection
SMALL = {
    "reversal": {"lookback": 3, "hold": 2, "n_selected": 1},
    "rotation": {"lookback": 10, "hold": 3},
    "slow_momentum": {"lookback": 15, "hold": 6, "n_selected": 2},
}


@pytest.mark.parametrize("kind", RANKED)
def test_planted_drift_follows_the_trailing_selection(universe20, kind):
    """Bar u's added drift is ``edge * (k_i / n_selected - K / N) / hold``, ``k_i`` = how many of
    bars u-hold .. u-1 selected ticker i (``trailing_ranked`` of the planted closes), ``K`` = how
    many of them selected any; ``truth`` holds it and marks each bar's selection."""
    options, edge, tickers = SMALL[kind], 0.002, ["KO", "PG", "XOM", "JPM"]
    lookback, hold, k = options["lookback"], options["hold"], options.get("n_selected", 1)
    a = make_market(kind, universe20, 11, strength=edge, tickers=tickers, n_bars=300, **options)
    null = null_market(universe20, 11, tickers=tickers, n_bars=300)
    selected = trailing_ranked(a.close.to_numpy(), lookback, k, worst=DEFAULTS[kind][2])
    diff = _log_moves(a.close) - _log_moves(null.close)
    for u in range(1, 300):
        recent = selected[max(u - hold, 0) : u]
        counted = recent.any(axis=1).sum()
        want = edge * (recent.sum(axis=0) / k - counted / len(tickers)) / hold
        np.testing.assert_allclose(diff[u - 1], want, atol=1e-12, err_msg=f"bar {u}")
    np.testing.assert_allclose(a.truth["drift"].to_numpy()[1:], diff, atol=1e-12)
    np.testing.assert_array_equal(a.truth["regime"].to_numpy(), selected.astype(np.int64))
    assert selected[lookback:].sum(axis=1).tolist() == [k] * (300 - lookback)


def test_the_lead_lag_passes_the_leaders_moves_on(universe20):
    """Bar u's follower drift is ``strength * (leader's moves over bars u-hold .. u-1) / hold``;
    the leader's moves are the real days'; ``truth`` holds it and marks the leader."""
    tickers, strength, hold = ["KO", "PG", "XOM", "JPM"], 0.4, 3
    a = make_market("lead_lag", universe20, 11, strength=strength, hold=hold, tickers=tickers, n_bars=300)
    null = null_market(universe20, 11, tickers=tickers, n_bars=300)
    assert a.params == {"hold": 3, "leader": "KO"}
    moves = _log_moves(null.close)  # moves[u - 1] is bar u's
    diff = _log_moves(a.close) - moves
    for u in range(1, 300):
        want = strength * moves[max(u - 1 - hold, 0) : u - 1, 0].sum() / hold
        np.testing.assert_allclose(diff[u - 1], [0.0, want, want, want], atol=1e-12, err_msg=f"bar {u}")
    np.testing.assert_allclose(a.truth["drift"].to_numpy()[1:], diff, atol=1e-12)
    assert (a.truth["regime"].to_numpy() == [1, 0, 0, 0]).all()


def test_the_lead_lag_rule_holds_the_followers_after_the_leader_rose(universe20):
    m = make_market("lead_lag", universe20, 3, n_assets=3, n_bars=200)
    leader = m.params["leader"]
    w = hold_followers_after_leader_up(m.prices, leader)
    up = np.log(m.close[leader]).diff() > 0
    assert (w[leader] == 0).all() and (w.drop(columns=leader)[up] == 0.5).all().all()
    assert (w[~up] == 0).all().all() and up.sum() > 50
    with pytest.raises(MarketSpecError, match=r"markets\.leader: 'NOPE'"):
        hold_followers_after_leader_up(m.prices, "NOPE")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(1, 3), st.booleans())
def test_the_ranked_rule_holds_the_trailing_selection(seed, lookback, n_selected, worst):
    """Equal shares in the ``n_selected`` best (worst) trailing returns among listed tickers; cash
    while fewer than that many can be ranked."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2001-01-01", periods=80)
    close = pd.DataFrame(50 * np.exp(np.cumsum(rng.normal(0, 0.02, (80, 4)), axis=0)), index=dates)
    close.iloc[: rng.integers(0, 40), 3] = np.nan  # a late listing
    w = hold_trailing_ranked(pd.concat({"Close": close}, axis=1), lookback, n_selected, worst).to_numpy()
    for t in range(80):
        ret = close.iloc[t] / close.iloc[t - lookback] if t >= lookback else close.iloc[t] * np.nan
        ranked = ret.dropna().sort_values(ascending=worst, kind="stable")
        if len(ranked) < n_selected:
            assert (w[t] == 0).all(), t
        else:
            want = np.zeros(4)
            want[list(ranked.index[:n_selected])] = 1.0 / n_selected
            np.testing.assert_array_equal(w[t], want, err_msg=f"bar {t}")


def rule_and_equal_weight_sharpe(market) -> tuple[float, float]:
    """Annualised Sharpe of the market's rule (lane 0) and of equal weight bought at the first
    bar and held (lane 1), one replay filled at the next close, 3 bps costs."""
    c = market.close.to_numpy()
    T, N = c.shape
    panel = PortfolioPanel(c, np.zeros((T, N, 1)), tuple(market.close.columns), market.close.index)
    schedule = np.stack([market.rule_position.to_numpy(), np.full((T, N), 1.0 / N)])
    schedule[1, 1:] = np.nan  # NaN: hold
    run = replay_weights(panel, COSTS, ScheduleDecider(schedule), num_lanes=2)
    assert run.cost[0].sum() > 0  # the rule paid for its trades
    r = run.returns()
    s = r.mean(axis=1) / r.std(axis=1) * np.sqrt(252)
    return float(s[0]), float(s[1])


@pytest.mark.parametrize(
    "seed", [s if i == 0 else pytest.param(s, marks=pytest.mark.slow) for i, s in enumerate(SEEDS)]
)
@pytest.mark.parametrize("kind", UNIVERSE_KINDS)
def test_the_rule_beats_equal_weight_when_planted_and_not_on_null(universe20, kind, seed):
    """Default strength, 5 tickers, ten years: the rule beats equal weight by more than 0.4 on the
    planted market; the same rule on the null market of the same real days by less than 0.3."""
    planted = make_market(kind, universe20, seed, n_assets=5, n_bars=2520)
    rule, ew = rule_and_equal_weight_sharpe(planted)
    assert rule - ew > 0.4, f"{kind} seed {seed}: rule Sharpe {rule:.2f}, equal weight {ew:.2f}"
    null = null_market(universe20[list(planted.close.columns)], seed, n_bars=2520)
    rule, ew = rule_and_equal_weight_sharpe(
        dataclasses.replace(null, rule_position=planted.rule(null.prices))
    )
    assert rule - ew < 0.3, f"{kind} null seed {seed}: rule Sharpe {rule:.2f}, equal weight {ew:.2f}"
