"""Synthetic universes (docs/portfolio_data.md): null days are real rows with no structure left;
the planted rotation edge is there, and the oracle rule exploits it after costs, on the planted
universe only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from reinforce_strategy_creator.env.portfolio import PortfolioConfig, PortfolioInputError
from reinforce_strategy_creator.portfolio import PortfolioPanel, replay_weights
from reinforce_strategy_creator.portfolio import synthetic as sy
from reinforce_strategy_creator.universe import read_universe_csv
from tests.support.project import SP500_20_CSV, STOCKS_CSV

torch.set_num_threads(1)
COSTS = PortfolioConfig(window=1, commission_bps=1.0, slippage_bps=2.0)
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def source() -> pd.DataFrame:
    return read_universe_csv(SP500_20_CSV).field("Close")


def _log_moves(close: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(close.to_numpy(dtype=np.float64)), axis=0)


def _lag1_autocorr(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0)
    return (x[1:] * x[:-1]).sum(axis=0) / (x * x).sum(axis=0)


# --------------------------------------------------------------------------- null universe
def test_null_universe_is_reproducible_business_days(source):
    a = sy.null_universe(source, seed=3, n_bars=600)
    b = sy.null_universe(source, seed=3, n_bars=600)
    c = sy.null_universe(source, seed=4, n_bars=600)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())
    assert a.shape == (600, 20) and list(a.columns) == list(source.columns)
    assert (a.index == pd.bdate_range(sy.SYNTHETIC_START, periods=600)).all()
    assert np.allclose(a.iloc[0].to_numpy(), 100.0) and np.isfinite(a.to_numpy()).all()
    assert len(sy.null_universe(source, seed=3)) == len(source)  # default length


def test_null_rows_are_whole_real_rows(source):
    real = _log_moves(source)
    tree = cKDTree(real)
    for seed in SEEDS:
        synth = _log_moves(sy.null_universe(source, seed, n_bars=2000))
        dist, _ = tree.query(synth)
        assert dist.max() < 1e-9, f"seed {seed}: a row of the null universe is not a real day"
    # ... and the check can fail: shuffling one ticker's column breaks the rows apart
    shuffled = synth.copy()
    shuffled[:, 0] = np.random.default_rng(0).permutation(shuffled[:, 0])
    assert tree.query(shuffled)[0].max() > 1e-4


def test_null_skips_days_a_ticker_is_not_listed():
    dates = pd.bdate_range("2001-01-01", periods=400)
    rng = np.random.default_rng(5)
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (400, 3)), axis=0)), index=dates)
    close.columns = ["A", "B", "LATE"]
    close.iloc[:100, 2] = np.nan  # LATE lists on row 100: its first move is row 101's
    real = _log_moves(close)[100:]
    synth = _log_moves(sy.null_universe(close, seed=0, n_bars=3000))
    assert np.isfinite(synth).all()
    assert cKDTree(real).query(synth)[0].max() < 1e-9
    # every usable real day is drawn about equally often (none from before the listing)
    assert len(np.unique(np.round(synth, 12), axis=0)) > 0.95 * len(real)


def test_null_needs_enough_shared_days():
    five = read_universe_csv(STOCKS_CSV).field("Close")  # FB: 196 bars, so 195 shared moves
    with pytest.raises(PortfolioInputError, match="only 195 dates"):
        sy.null_universe(five, seed=0)
    with pytest.raises(PortfolioInputError, match="n_bars"):
        sy.null_universe(five.drop(columns="FB"), seed=0, n_bars=1)


def test_null_has_no_autocorrelation(source):
    """Lag-1 autocorrelation of i.i.d. days is about N(0, 1/T): every ticker, 3 seeds, within 4 SE."""
    limit = 4.0 / np.sqrt(len(source))
    for seed in SEEDS:
        ac = _lag1_autocorr(_log_moves(sy.null_universe(source, seed)))
        assert np.abs(ac).max() < limit, f"seed {seed}: lag-1 autocorrelation {ac.round(3)}"
    # the same check flags a small planted autocorrelation (so it can fail)
    x = _log_moves(sy.null_universe(source, 0))
    ar = x.copy()
    ar[1:] += 0.15 * x[:-1]
    assert np.abs(_lag1_autocorr(ar)).min() > limit


def test_trailing_return_predicts_nothing_on_null_but_does_when_planted(source):
    """The leader's next-bar excess return: |t| < 3 on null universes, t > 3 on planted ones."""
    for seed in SEEDS:
        null = sy.null_universe(source, seed, n_bars=2520)
        planted = sy.planted_rotation_universe(seed, close=source)
        t_null = sy.leader_excess_tstat(null, lookback=20)
        t_planted = sy.leader_excess_tstat(planted, lookback=20)
        assert abs(t_null) < 3.0, f"seed {seed}: null universe predictable, t = {t_null:.2f}"
        assert t_planted > 3.0, f"seed {seed}: planted edge not found, t = {t_planted:.2f}"


# --------------------------------------------------------------------------- planted universe
def test_planted_is_reproducible_and_shares_days_with_null(source):
    a = sy.planted_rotation_universe(7, n_bars=500, close=source)
    pd.testing.assert_frame_equal(a, sy.planted_rotation_universe(7, n_bars=500, close=source))
    assert a.shape == (500, 5) and set(a.columns) <= set(source.columns)
    assert a.attrs == {"kind": "rotation", "seed": 7, "lookback": 20, "hold": 5, "edge": sy.DEFAULT_EDGE}
    # edge 0 is the null universe of the same tickers and seed
    zero = sy.planted_rotation_universe(7, n_bars=500, close=source, edge=0.0)
    null = sy.null_universe(source[list(a.columns)], 7, n_bars=500)
    np.testing.assert_allclose(zero.to_numpy(), null.to_numpy(), rtol=1e-12)
    # the planted drift keeps the cross-sectional mean log move of every real day
    diff = _log_moves(a) - _log_moves(null)
    np.testing.assert_allclose(diff.sum(axis=1), 0.0, atol=1e-12)
    assert np.abs(diff).max() > 0


def test_planted_drift_follows_the_trailing_leader(source):
    """Bar u's added drift is edge * (k_i - K/N) / hold, k_i = leaders among bars u-hold .. u-1."""
    lookback, hold, edge = 10, 3, 0.002
    a = sy.planted_rotation_universe(
        11, n_bars=300, lookback=lookback, hold=hold, edge=edge, close=source, tickers=["KO", "PG", "XOM"]
    )
    null = sy.null_universe(source[["KO", "PG", "XOM"]], 11, n_bars=300)
    leaders = sy.trailing_leaders(a.to_numpy(), lookback)
    diff = _log_moves(a) - _log_moves(null)
    for u in range(1, 300):
        recent = [leaders[s] for s in range(max(u - hold, 0), u) if leaders[s] >= 0]
        want = np.zeros(3)
        if recent:
            k = np.bincount(recent, minlength=3)
            want = edge * (k - k.sum() / 3) / hold
        np.testing.assert_allclose(diff[u - 1], want, atol=1e-12, err_msg=f"bar {u}")


def test_planted_bad_parameters_name_them(source):
    with pytest.raises(PortfolioInputError, match="n_assets"):
        sy.planted_rotation_universe(0, n_assets=21, close=source)
    with pytest.raises(PortfolioInputError, match="synthetic.edge"):
        sy.planted_rotation_universe(0, edge=-0.001, close=source)
    with pytest.raises(PortfolioInputError, match="NOPE"):
        sy.planted_rotation_universe(0, tickers=["AAPL", "NOPE"], close=source)


def test_planted_default_source_is_the_shipped_panel():
    a = sy.planted_rotation_universe(1, n_bars=300)
    assert set(a.columns) <= set(read_universe_csv(SP500_20_CSV).tickers)


# --------------------------------------------------------------------------- oracle
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(0, 119))
def test_oracle_is_causal_and_holds_the_trailing_leader(seed, lookback, bar):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (120, 4)), axis=0))
    close[: rng.integers(0, 40), 3] = np.nan  # a late listing
    obs = torch.zeros(2, 1)
    w = sy.rotation_oracle(close, lookback)(obs, bar)
    later = close.copy()
    later[bar + 1 :] *= np.exp(rng.normal(0, 0.3, later[bar + 1 :].shape))
    np.testing.assert_array_equal(w, sy.rotation_oracle(later, lookback)(obs, bar))
    assert w.shape == (2, 4)
    if bar < lookback or not np.isfinite(close[bar - lookback] / close[bar]).any():
        assert (w == 0).all()  # nothing to rank yet: cash
    else:
        ret = close[bar] / close[bar - lookback]
        assert (w.sum(axis=1) == 1).all() and w[0, np.nanargmax(ret)] == 1.0


def _sharpes(close: pd.DataFrame) -> tuple[float, float]:
    """Annualised Sharpe of the oracle (lane 0) and of equal weight bought and held (lane 1),
    one replay, 3 bps costs."""
    c = close.to_numpy()
    T, N = c.shape
    panel = PortfolioPanel(c, np.zeros((T, N, 1)), tuple(close.columns), close.index)
    oracle = sy.rotation_oracle(c, 20)

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
def test_oracle_beats_equal_weight_when_planted_and_not_on_null(source, seed):
    planted = sy.planted_rotation_universe(seed, close=source)
    oracle, ew = _sharpes(planted)
    assert oracle - ew > 0.4, f"planted seed {seed}: oracle Sharpe {oracle:.2f}, equal weight {ew:.2f}"
    null = sy.null_universe(source[list(planted.columns)], seed, n_bars=len(planted))
    oracle, ew = _sharpes(null)
    assert oracle - ew < 0.3, f"null seed {seed}: oracle Sharpe {oracle:.2f}, equal weight {ew:.2f}"
