"""Every planted market is real days plus exactly its stated structure; rules are causal; seeds
reproduce markets; bad parameters are refused by name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.markets import (
    BUILDERS,
    PLANTED_KINDS,
    MarketSpecError,
    day_ratios,
    low_volatility_filter,
    make_market,
    planted_momentum_market,
    planted_reversion_market,
    planted_suite,
    planted_trend_market,
    planted_volatility_market,
    trend_filter,
)

KINDS = tuple(BUILDERS)


def _cc(prices: pd.DataFrame) -> np.ndarray:
    """Close-to-close log return of each bar, 0 on the first."""
    return np.diff(np.log(prices["Close"].to_numpy()), prepend=np.log(prices["Close"].iloc[0]))


def _spells(regime: np.ndarray) -> pd.Series:
    """Length of every spell (run of equal values), by its value; the cut-off last one left out."""
    change = np.flatnonzero(np.diff(regime)) + 1
    bounds = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([bounds, [len(regime)]]))
    return pd.Series(lengths[:-1], index=regime[bounds][:-1])


@pytest.mark.parametrize("kind", KINDS)
def test_every_market_is_real_days_plus_its_planted_part(sp500, kind):
    """Undoing ``truth`` (``vol_scale``, ``drift``) gives back, bar by bar, the real day drawn."""
    m = make_market(kind, sp500, seed=4)
    p, truth = m.prices, m.truth
    pool = day_ratios(sp500)
    assert truth.index.equals(p.index) and p.index.equals(sp500.index)
    assert truth["source_date"].isin(pool.index).all()  # only real days with a real open
    src = pool.loc[truth["source_date"]]
    scale, drift = truth["vol_scale"].to_numpy(), truth["drift"].to_numpy()
    log_gap = np.log(p["Open"].to_numpy()[1:] / p["Close"].to_numpy()[:-1])
    np.testing.assert_allclose(log_gap / scale[1:], np.log(src["gap"].to_numpy()[1:]), rtol=1e-9, atol=1e-12)
    body = (np.log(p["Close"] / p["Open"]).to_numpy() - drift) / scale
    np.testing.assert_allclose(body, np.log(src["body"].to_numpy()), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(p["Volume"].to_numpy(), src["volume"].to_numpy())
    # the range is the real day's range (scaled), stretched only where the planted move leaves it
    hi = np.log(p["High"] / p["Open"]).to_numpy()
    real_hi = scale * np.log(src["high"].to_numpy())
    assert np.all(hi >= real_hi - 1e-12)
    inside = p["Close"].to_numpy() <= p["Open"].to_numpy() * np.exp(real_hi)
    np.testing.assert_allclose(hi[inside], real_hi[inside], atol=1e-12)
    assert (p["High"] >= p[["Open", "Close"]].max(axis=1)).all() and (
        p["Low"] <= p[["Open", "Close"]].min(axis=1)
    ).all()
    # drawn i.i.d. from the whole pool: the unplanted bodies are distributed like the real ones
    assert stats.ks_2samp(body, np.log(pool["body"].to_numpy())).pvalue > 1e-3
    if kind == "null":
        assert (scale == 1.0).all() and (drift == 0.0).all()


@pytest.mark.parametrize("build, sign", [(planted_momentum_market, 1.0), (planted_reversion_market, -1.0)])
def test_one_day_structures_follow_the_previous_close_to_close_return(sp500, build, sign):
    m = build(sp500, seed=2, strength=0.4)
    cc = _cc(m.prices)
    np.testing.assert_allclose(m.truth["drift"].to_numpy(), sign * 0.4 * np.r_[0.0, cc[:-1]], atol=1e-12)
    assert (m.truth["vol_scale"] == 1.0).all() and m.strength == 0.4


def test_the_trend_is_a_persistent_drift_of_stated_size(sp500):
    m = planted_trend_market(sp500, seed=3, strength=0.5, regime_days=50)
    regime, drift = m.truth["regime"].to_numpy(), m.truth["drift"].to_numpy()
    assert set(np.unique(regime)) == {-1, 1}
    np.testing.assert_allclose(drift, regime * 0.5 / 252)
    spells = _spells(regime)
    assert len(spells) > 50 and 0.7 * 50 < spells.mean() < 1.3 * 50
    assert 0.35 < np.mean(regime == 1) < 0.65
    # the drift shows in the prices: up-trend days gain more than down-trend days
    cc = _cc(m.prices)
    assert cc[regime == 1].mean() - cc[regime == -1].mean() > 0.5 * 2 * 0.5 / 252


def test_volatility_regimes_scale_risk_and_cut_the_drift(sp500):
    m = planted_volatility_market(sp500, seed=3, vol_ratio=3.0, calm_days=60, turbulent_days=20)
    turbulent = m.truth["regime"].to_numpy() == 1
    cc = _cc(m.prices)[1:]
    t = turbulent[1:]
    assert np.std(cc[t]) / np.std(cc[~t]) == pytest.approx(3.0, rel=0.2)
    real = np.log(day_ratios(sp500)["gap"] * day_ratios(sp500)["body"]).to_numpy()
    assert np.std(cc) == pytest.approx(np.std(real), rel=0.2)  # long-run variance kept
    spells = _spells(m.truth["regime"].to_numpy())
    assert spells[spells.index == 1].mean() == pytest.approx(20, rel=0.35)
    assert spells[spells.index == 0].mean() == pytest.approx(60, rel=0.35)
    drift = m.truth["drift"].to_numpy()
    np.testing.assert_allclose(drift[turbulent], -1.5 * 0.75 / 252)
    np.testing.assert_allclose(drift[~turbulent], 1.5 * 0.25 / 252)
    # the rule is flat mostly in turbulent spells
    flat = m.rule_position.to_numpy() == 0.0
    assert turbulent[flat].mean() > 0.6 and turbulent[~flat].mean() < 0.15


# ----------------------------------------------------------------------------------- causality
_MARKETS: dict[str, object] = {}  # built once per kind for the property test


def _perturbed_after(prices: pd.DataFrame, t: int, rng: np.random.Generator) -> pd.DataFrame:
    out = prices.copy()
    n = len(out) - t - 1
    shock = np.exp(np.cumsum(rng.normal(0.0, 0.05, n)))
    for col in ("Open", "High", "Low", "Close"):
        out.iloc[t + 1 :, out.columns.get_loc(col)] *= shock
    out.iloc[t + 1 :, out.columns.get_loc("Volume")] *= rng.uniform(0.5, 2.0, n)
    return out


def _prefix_unchanged(rule, prices: pd.DataFrame, t: int, rng: np.random.Generator) -> bool:
    before = rule(prices).to_numpy()[: t + 1]
    after = rule(_perturbed_after(prices, t, rng)).to_numpy()[: t + 1]
    return bool(np.array_equal(before, after))


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(KINDS), t=st.integers(0, 398), seed=st.integers(0, 2**32 - 1))
def test_rules_are_causal(sp500, kind, t, seed):
    """Perturbing prices after bar t never changes the rule's positions up to t."""
    if kind not in _MARKETS:
        _MARKETS[kind] = make_market(kind, sp500, seed=7)
    m = _MARKETS[kind]
    prices = m.prices.iloc[:400]
    assert _prefix_unchanged(m.rule, prices, t, np.random.default_rng(seed))


def test_the_causality_check_catches_a_rule_that_peeks(sp500):
    """The same check fails for a rule that reads the next close, so the property test has teeth."""
    prices = make_market("trend", sp500, seed=7).prices.iloc[:400]

    def peeking(p):
        return trend_filter(p.shift(-1).ffill())

    rng = np.random.default_rng(0)
    assert not all(_prefix_unchanged(peeking, prices, t, rng) for t in range(50, 350, 10))


def test_stored_positions_are_the_rule_applied_to_the_prices(sp500):
    for m in planted_suite(sp500, seeds=(5,), null_seeds=(5,)):
        pd.testing.assert_series_equal(m.rule_position, m.rule(m.prices))
        assert set(np.unique(m.rule_position)) <= {0.0, 1.0}
        assert m.environment == {"fill_price": "next_open"}


# --------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_market(sp500, kind):
    a, b, c = (make_market(kind, sp500, s) for s in (11, 11, 12))
    pd.testing.assert_frame_equal(a.prices, b.prices)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    pd.testing.assert_series_equal(a.rule_position, b.rule_position)
    assert not a.prices.equals(c.prices)
    # every kind of one seed is built from the same real days as that seed's null market
    null = make_market("null", sp500, 11)
    assert a.truth["source_date"].equals(null.truth["source_date"])


# ------------------------------------------------------------------------------- bad parameters
BAD = [
    (planted_momentum_market, {"strength": 1.0}, "strength"),
    (planted_momentum_market, {"strength": 0.0}, "strength"),
    (planted_momentum_market, {"strength": float("nan")}, "strength"),
    (planted_reversion_market, {"strength": -0.2}, "strength"),
    (planted_reversion_market, {"strength": True}, "strength"),
    (planted_trend_market, {"strength": 6.0}, "strength"),
    (planted_trend_market, {"regime_days": 1.0}, "regime_days"),
    (planted_trend_market, {"lookback": 0}, "lookback"),
    (planted_trend_market, {"lookback": 2.5}, "lookback"),
    (planted_volatility_market, {"vol_ratio": 1.0}, "vol_ratio"),
    (planted_volatility_market, {"calm_days": 0}, "calm_days"),
    (planted_volatility_market, {"turbulent_days": "20"}, "turbulent_days"),
    (planted_volatility_market, {"lookback": 1}, "lookback"),
    (planted_volatility_market, {"strength": 0.0}, "strength"),
    (planted_trend_market, {"initial_price": -1.0}, "initial_price"),
]


@pytest.mark.parametrize("build, kwargs, name", BAD, ids=[f"{b.__name__}-{n}" for b, _, n in BAD])
def test_bad_parameters_name_the_parameter(sp500, build, kwargs, name):
    with pytest.raises(MarketSpecError, match=rf"markets\.{name} ") as info:
        build(sp500, 1, **kwargs)
    assert isinstance(info.value, InputError) and "docs/markets.md" in str(info.value)


def test_bad_seeds_kinds_and_rule_parameters_are_refused(sp500):
    with pytest.raises(MarketSpecError, match=r"markets\.seed "):
        make_market("momentum", sp500, -1)
    with pytest.raises(MarketSpecError, match=r"markets\.seed "):
        make_market("null", sp500, 1.5)
    with pytest.raises(MarketSpecError, match=r"markets\.kind "):
        make_market("carry", sp500, 1)
    with pytest.raises(MarketSpecError, match=r"markets\.seeds "):
        planted_suite(sp500, seeds=(1, 1))
    with pytest.raises(MarketSpecError, match=r"markets\.null_seeds "):
        planted_suite(sp500, null_seeds=(2, 2))
    with pytest.raises(MarketSpecError, match=r"markets\.kinds"):
        planted_suite(sp500, kinds=("momentum", "null"))
    with pytest.raises(MarketSpecError, match=r"markets\.max_vol "):
        low_volatility_filter(sp500, max_vol=-0.01)
    with pytest.raises(MarketSpecError, match=r"markets\.lookback "):
        trend_filter(sp500, lookback=0)


def test_planted_kinds_have_builders():
    assert set(PLANTED_KINDS) | {"null"} == set(BUILDERS)
