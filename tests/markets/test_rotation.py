"""The planted rotation (N >= 2, docs/markets.md): the trailing leader's excess return is there
on planted markets and not on null ones, the drift is exactly the stated one, and the oracle
rule exploits it after costs on planted markets only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.evaluation.replay import replay_weights
from reinforce_strategy_creator.markets import (
    DEFAULT_EDGE,
    make_market,
    null_market,
    planted_rotation_market,
    rotation_oracle,
    trailing_leaders,
)
from reinforce_strategy_creator.panel import PortfolioPanel
from tests.support.env import universe_env

torch.set_num_threads(1)
COSTS = universe_env(window=1, commission_bps=1.0, slippage_bps=2.0)
SEEDS = (0, 1, 2)


def _rotation(source, seed, **kw):
    return planted_rotation_market(source, seed, **{"n_assets": 5, "n_bars": 2520, **kw})


def _log_moves(close: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(close.to_numpy(dtype=np.float64)), axis=0)


def leader_excess_tstat(close: np.ndarray, lookback: int = 20) -> float:
    """The t-statistic of ``d_t = r[leader_t, t+1] - mean_i r[i, t+1]``: the trailing leader's
    next-bar simple return minus the cross-sectional mean. Under i.i.d. days ``d_t`` is a
    martingale difference, so the statistic is about N(0, 1); a planted edge makes it large."""
    c = np.asarray(close, dtype=np.float64)
    leaders = trailing_leaders(c, lookback)
    r = c[1:] / c[:-1] - 1.0  # r[k] = move from row k to k+1
    t = np.flatnonzero((leaders >= 0) & (np.arange(len(c)) + 1 < len(c)))
    d = r[t, leaders[t]] - r[t].mean(axis=1)
    return float(d.mean() / (d.std(ddof=1) / np.sqrt(len(d))))


def test_trailing_return_predicts_nothing_on_null_but_does_when_planted(universe20):
    """The leader's next-bar excess return: |t| < 3 on null markets, t > 3 on planted ones."""
    for seed in SEEDS:
        planted = _rotation(universe20, seed).close
        null = null_market(universe20, seed, n_bars=2520).close
        t_null, t_planted = leader_excess_tstat(null), leader_excess_tstat(planted)
        assert abs(t_null) < 3.0, f"seed {seed}: null market predictable, t = {t_null:.2f}"
        assert t_planted > 3.0, f"seed {seed}: planted edge not found, t = {t_planted:.2f}"


def test_edge_zero_is_the_null_market_and_the_drift_is_relative(universe20):
    a = _rotation(universe20, 7, n_bars=500)
    assert a.close.shape == (500, 5) and a.params == {"lookback": 20, "hold": 5}
    assert a.strength == DEFAULT_EDGE
    zero = _rotation(universe20, 7, n_bars=500, strength=0.0)
    null = null_market(universe20[list(a.close.columns)], 7, n_bars=500)
    np.testing.assert_allclose(zero.close.to_numpy(), null.close.to_numpy(), rtol=1e-12)
    # the planted drift keeps the cross-sectional mean log move of every real day
    diff = _log_moves(a.close) - _log_moves(null.close)
    np.testing.assert_allclose(diff.sum(axis=1), 0.0, atol=1e-12)
    assert np.abs(diff).max() > 0


def test_planted_drift_follows_the_trailing_leader(universe20):
    """Bar u's added drift is edge * (k_i - K/N) / hold, k_i = leaders among bars u-hold .. u-1;
    ``truth`` holds it and marks each bar's leader."""
    lookback, hold, edge, tickers = 10, 3, 0.002, ["KO", "PG", "XOM"]
    a = make_market(
        "rotation", universe20, 11, strength=edge, lookback=lookback, hold=hold, tickers=tickers, n_bars=300
    )
    null = null_market(universe20, 11, tickers=tickers, n_bars=300)
    leaders = trailing_leaders(a.close.to_numpy(), lookback)
    diff = _log_moves(a.close) - _log_moves(null.close)
    for u in range(1, 300):
        recent = [leaders[s] for s in range(max(u - hold, 0), u) if leaders[s] >= 0]
        want = np.zeros(3)
        if recent:
            k = np.bincount(recent, minlength=3)
            want = edge * (k - k.sum() / 3) / hold
        np.testing.assert_allclose(diff[u - 1], want, atol=1e-12, err_msg=f"bar {u}")
    np.testing.assert_allclose(a.truth["drift"].to_numpy()[1:], diff, atol=1e-12)
    marked = a.truth["regime"].to_numpy()
    np.testing.assert_array_equal(marked.argmax(axis=1)[leaders >= 0], leaders[leaders >= 0])
    assert (marked[leaders < 0] == 0).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(0, 119))
def test_oracle_is_causal_and_holds_the_trailing_leader(seed, lookback, bar):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (120, 4)), axis=0))
    close[: rng.integers(0, 40), 3] = np.nan  # a late listing
    obs = torch.zeros(2, 1)
    w = rotation_oracle(close, lookback)(obs, bar)
    later = close.copy()
    later[bar + 1 :] *= np.exp(rng.normal(0, 0.3, later[bar + 1 :].shape))
    np.testing.assert_array_equal(w, rotation_oracle(later, lookback)(obs, bar))
    assert w.shape == (2, 4)
    if bar < lookback or not np.isfinite(close[bar - lookback] / close[bar]).any():
        assert (w == 0).all()  # nothing to rank yet: cash
    else:
        ret = close[bar] / close[bar - lookback]
        assert (w.sum(axis=1) == 1).all() and w[0, np.nanargmax(ret)] == 1.0


def test_the_markets_rule_is_the_oracle(universe20):
    m = _rotation(universe20, 1, n_bars=400)
    oracle = rotation_oracle(m.close.to_numpy(), 20)
    obs = torch.zeros(1, 1)
    want = np.vstack([oracle(obs, bar) for bar in range(400)])
    np.testing.assert_array_equal(m.rule_position.to_numpy(), want)


def _sharpes(close: pd.DataFrame) -> tuple[float, float]:
    """Annualised Sharpe of the oracle (lane 0) and of equal weight bought and held (lane 1),
    one replay, 3 bps costs."""
    c = close.to_numpy()
    T, N = c.shape
    panel = PortfolioPanel(c, np.zeros((T, N, 1)), tuple(close.columns), close.index)
    oracle = rotation_oracle(c, 20)

    def decide(obs, bar):
        return np.vstack([oracle(obs[:1], bar), np.full((1, N), 1.0 / N)]), np.array([False, bar > 0])

    run = replay_weights(panel, COSTS, decide, num_lanes=2)
    r = run.returns()
    assert run.cost[0].sum() > 0  # the oracle paid for its trades
    s = r.mean(axis=1) / r.std(axis=1) * np.sqrt(252)
    return float(s[0]), float(s[1])


@pytest.mark.parametrize(
    "seed", [s if i == 0 else pytest.param(s, marks=pytest.mark.slow) for i, s in enumerate(SEEDS)]
)
def test_oracle_beats_equal_weight_when_planted_and_not_on_null(universe20, seed):
    planted = _rotation(universe20, seed).close
    oracle, ew = _sharpes(planted)
    assert oracle - ew > 0.4, f"planted seed {seed}: oracle Sharpe {oracle:.2f}, equal weight {ew:.2f}"
    null = null_market(universe20[list(planted.columns)], seed, n_bars=len(planted)).close
    oracle, ew = _sharpes(null)
    assert oracle - ew < 0.3, f"null seed {seed}: oracle Sharpe {oracle:.2f}, equal weight {ew:.2f}"
