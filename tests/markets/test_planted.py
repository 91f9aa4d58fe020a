"""Every planted market is real days plus exactly its stated structure, at N = 1 and N > 1; rules
are causal; bad parameters are refused by name."""

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
    UNIVERSE_KINDS,
    MarketSpecError,
    day_moves,
    low_volatility_filter,
    make_market,
    planted_lead_lag_market,
    planted_momentum_market,
    planted_reversal_market,
    planted_reversion_market,
    planted_rotation_market,
    planted_slow_momentum_market,
    planted_suite,
    planted_trend_market,
    planted_volatility_market,
    trend_filter,
)
from tests.support.markets import as_panel, drawn_rows, unplanted

from .test_markets import KIND_SOURCES


def _options(kind: str) -> dict:
    return {"n_assets": 5} if kind in UNIVERSE_KINDS else {}


def _cc(m) -> np.ndarray:
    """(T, N) close-to-close log return of each bar and ticker, 0 on the first."""
    log_close = np.log(as_panel(m.prices)["Close"].to_numpy())
    return np.vstack([np.zeros((1, log_close.shape[1])), np.diff(log_close, axis=0)])


def _spells(regime: np.ndarray) -> pd.Series:
    """Length of every spell (run of equal values) of each column, by its value; the cut-off last
    spell of each column left out."""
    out = []
    for col in np.asarray(regime).reshape(len(regime), -1).T:
        change = np.flatnonzero(np.diff(col)) + 1
        bounds = np.concatenate([[0], change])
        lengths = np.diff(np.concatenate([bounds, [len(col)]]))
        out.append(pd.Series(lengths[:-1], index=col[bounds][:-1]))
    return pd.concat(out)


@pytest.mark.parametrize("kind, source", KIND_SOURCES, indirect=["source"])
def test_every_market_is_real_days_plus_its_planted_part(kind, source):
    """Undoing ``truth`` (``vol_scale``, ``drift``) gives back, bar by bar, the whole real row drawn;
    the range is the real day's, stretched only where the planted move leaves it."""
    m = make_market(kind, source, seed=4, **_options(kind))
    own, real = unplanted(m), drawn_rows(m, source)
    for name in ("gap", "body", "volume", "move"):
        if name in own:
            np.testing.assert_allclose(own[name], real[name], rtol=1e-9, atol=1e-12, err_msg=name)
    if "high" in own:
        assert np.all(own["high"] >= real["high"] - 1e-12) and np.all(own["low"] <= real["low"] + 1e-12)
        p, scale = as_panel(m.prices), as_panel(m.truth)["vol_scale"].to_numpy()
        inside = p["Close"].to_numpy() <= p["Open"].to_numpy() * np.exp(scale * real["high"])
        np.testing.assert_allclose(own["high"][inside], real["high"][inside], atol=1e-12)
    # drawn i.i.d. from the whole pool: the unplanted moves are distributed like the real ones
    # (one ticker: the rows, not the tickers of a row, are independent)
    name = "body" if "body" in own else "move"
    pool = as_panel(day_moves(source))[name].to_numpy()[:, 0]
    assert stats.ks_2samp(own[name][1:, 0], pool).pvalue > 1e-3
    truth = as_panel(m.truth)
    if "move" in own:  # close-only: bar 0 has no move, so nothing is planted on it
        assert np.allclose(as_panel(m.prices)["Close"].iloc[0], 100.0) and (truth["drift"].iloc[0] == 0).all()
    if kind == "null":
        assert (truth["vol_scale"] == 1.0).all().all() and (truth["drift"] == 0.0).all().all()


@pytest.mark.parametrize("source", ["one", "close20"], indirect=True)
@pytest.mark.parametrize("build, sign", [(planted_momentum_market, 1.0), (planted_reversion_market, -1.0)])
def test_one_day_structures_follow_the_previous_close_to_close_return(source, build, sign):
    m = build(source, seed=2, strength=0.4)
    truth = as_panel(m.truth)
    previous = np.vstack([np.zeros((1, _cc(m).shape[1])), _cc(m)[:-1]])
    np.testing.assert_allclose(truth["drift"].to_numpy(), sign * 0.4 * previous, atol=1e-12)
    assert (truth["vol_scale"] == 1.0).all().all() and m.strength == 0.4


@pytest.mark.parametrize("source", ["one", "close20"], indirect=True)
def test_the_trend_is_a_persistent_drift_of_stated_size(source):
    """Each ticker on its own spells (mean 50 bars), the drift ``±strength / 252``, visible in prices."""
    m = planted_trend_market(source, seed=3, strength=0.5, regime_days=50)
    regime, drift = as_panel(m.truth)["regime"].to_numpy(), as_panel(m.truth)["drift"].to_numpy()
    assert set(np.unique(regime)) == {-1, 1}
    np.testing.assert_allclose(drift[1:], regime[1:] * 0.5 / 252)
    spells = _spells(regime)
    assert len(spells) > 50 and 0.7 * 50 < spells.mean() < 1.3 * 50
    assert 0.35 < np.mean(regime == 1) < 0.65
    if regime.shape[1] > 1:  # independent spells per ticker
        assert abs(np.corrcoef(regime[:, 0], regime[:, 1])[0, 1]) < 0.2
    cc = _cc(m)
    assert cc[regime == 1].mean() - cc[regime == -1].mean() > 0.5 * 2 * 0.5 / 252


@pytest.mark.parametrize("source", ["one", "close20"], indirect=True)
def test_volatility_regimes_scale_risk_and_cut_the_drift(source):
    """One regime for the whole market (every ticker's day scaled alike, the row kept)."""
    m = planted_volatility_market(source, seed=3, vol_ratio=3.0, calm_days=60, turbulent_days=20)
    truth = as_panel(m.truth)
    regimes = truth["regime"].to_numpy()
    assert (regimes == regimes[:, :1]).all()
    turbulent = regimes[:, 0] == 1
    cc = _cc(m)[1:]
    t = turbulent[1:]
    ratio = np.std(cc[t], axis=0) / np.std(cc[~t], axis=0)
    assert np.median(ratio) == pytest.approx(3.0, rel=0.2)
    real = np.diff(np.log(as_panel(make_market("null", source, 3).prices)["Close"].to_numpy()), axis=0)
    assert np.std(cc) == pytest.approx(np.std(real), rel=0.2)  # long-run variance kept
    spells = _spells(regimes[:, 0])
    assert spells[spells.index == 1].mean() == pytest.approx(20, rel=0.35)
    assert spells[spells.index == 0].mean() == pytest.approx(60, rel=0.35)
    drift, later = truth["drift"].to_numpy(), np.arange(len(turbulent)) > 0
    np.testing.assert_allclose(drift[turbulent & later], -1.5 * 0.75 / 252)
    np.testing.assert_allclose(drift[~turbulent & later], 1.5 * 0.25 / 252)
    # the rule is flat in a ticker mostly in turbulent spells
    flat = np.asarray(m.rule_position).reshape(len(turbulent), -1) == 0.0
    spell = np.broadcast_to(turbulent[:, None], flat.shape)
    assert spell[flat].mean() > 0.6 and spell[~flat].mean() < 0.15


# ----------------------------------------------------------------------------------- causality
_MARKETS: dict[tuple, object] = {}  # built once per kind and source for the property test
_PRICES = {"Open", "High", "Low", "Close"}


def _perturbed_after(prices: pd.DataFrame, t: int, rng: np.random.Generator) -> pd.DataFrame:
    out = prices.copy()
    n = len(out) - t - 1
    shock = np.exp(np.cumsum(rng.normal(0.0, 0.05, n)))
    for j, col in enumerate(out.columns):
        field = col[0] if isinstance(col, tuple) else col
        factor = shock if field in _PRICES else rng.uniform(0.5, 2.0, n)
        out.iloc[t + 1 :, j] *= factor * (1.0 + 0.01 * j)
    return out


def _prefix_unchanged(rule, prices: pd.DataFrame, t: int, rng: np.random.Generator) -> bool:
    before = np.asarray(rule(prices))[: t + 1]
    after = np.asarray(rule(_perturbed_after(prices, t, rng)))[: t + 1]
    return bool(np.array_equal(before, after))


@settings(max_examples=80, deadline=None)
@given(kind_source=st.sampled_from(KIND_SOURCES), t=st.integers(0, 398), seed=st.integers(0, 2**32 - 1))
def test_rules_are_causal(sp500, universe20, kind_source, t, seed):
    """Perturbing prices after bar t never changes the rule's positions up to t, at any N."""
    kind, name = kind_source
    if kind_source not in _MARKETS:
        source = {"one": sp500, "close20": universe20}[name]
        _MARKETS[kind_source] = make_market(kind, source, seed=7, **_options(kind))
    m = _MARKETS[kind_source]
    assert _prefix_unchanged(m.rule, m.prices.iloc[:400], t, np.random.default_rng(seed))


@pytest.mark.parametrize("source", ["one", "close20"], indirect=True)
def test_the_causality_check_catches_a_rule_that_peeks(source):
    """The same check fails for a rule that reads the next close, so the property test has teeth."""
    prices = make_market("trend", source, seed=7).prices.iloc[:400]

    def peeking(p):
        return trend_filter(p.shift(-1).ffill())

    rng = np.random.default_rng(0)
    assert not all(_prefix_unchanged(peeking, prices, t, rng) for t in range(50, 350, 10))


@pytest.mark.parametrize("source", ["one", "close20"], indirect=True)
def test_stored_positions_are_the_rule_applied_to_the_prices(source):
    """One series: positions 0 or 1. A panel: weights in [0, 1] summing to at most 1."""
    kinds = [k for k in BUILDERS if k != "null"] if source.shape[1] == 20 else PLANTED_KINDS
    for m in planted_suite(
        source, seeds=(5,), null_seeds=(5,), kinds=kinds, options={k: {"n_assets": 5} for k in UNIVERSE_KINDS}
    ):
        rule = m.rule(m.prices)
        assert rule.equals(m.rule_position)
        w = np.asarray(rule).reshape(len(rule), -1)
        if w.shape[1] == 1:
            assert set(np.unique(w)) <= {0.0, 1.0}
        else:
            assert (
                (w >= 0).all()
                and (w.sum(axis=1) <= 1 + 1e-12).all()
                and w.sum(axis=1).max() == pytest.approx(1.0)
            )
        assert m.environment == {"fill_price": "next_open" if w.shape[1] == 1 else "next_close"}


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
    (planted_rotation_market, {"strength": -0.001}, "strength"),
    (planted_rotation_market, {"hold": 0}, "hold"),
    (planted_rotation_market, {"lookback": 0}, "lookback"),
    (planted_reversal_market, {"strength": 0.06}, "strength"),
    (planted_reversal_market, {"n_selected": 0}, "n_selected"),
    (planted_reversal_market, {"hold": 1.5}, "hold"),
    (planted_slow_momentum_market, {"strength": "0.005"}, "strength"),
    (planted_slow_momentum_market, {"lookback": -60}, "lookback"),
    (planted_slow_momentum_market, {"n_selected": 2.0}, "n_selected"),
    (planted_lead_lag_market, {"strength": 1.5}, "strength"),
    (planted_lead_lag_market, {"hold": 0}, "hold"),
]


@pytest.mark.parametrize("build, kwargs, name", BAD, ids=[f"{b.__name__}-{n}" for b, _, n in BAD])
def test_bad_parameters_name_the_parameter(universe20, build, kwargs, name):
    with pytest.raises(MarketSpecError, match=rf"markets\.{name} ") as info:
        build(universe20, 1, **kwargs)
    assert isinstance(info.value, InputError) and "docs/markets.md" in str(info.value)


def test_bad_rule_parameters_are_refused(sp500):
    with pytest.raises(MarketSpecError, match=r"markets\.max_vol "):
        low_volatility_filter(sp500, max_vol=-0.01)
    with pytest.raises(MarketSpecError, match=r"markets\.lookback "):
        trend_filter(sp500, lookback=0)


def test_planted_kinds_have_builders():
    assert set(PLANTED_KINDS) | set(UNIVERSE_KINDS) | {"null"} == set(BUILDERS)
    assert not set(PLANTED_KINDS) & set(UNIVERSE_KINDS)
