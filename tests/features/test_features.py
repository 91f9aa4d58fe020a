"""compute_features: names, warm-up, formulas, scale-freeness, causality and finite memory."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator import features as fe
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.features import FeatureSpec
from tests.support.features import random_walk

SPEC = FeatureSpec().to_params()  # every indicator (the model's periods), not conf/base's tuned selection
LOOKBACK = fe.max_lookback(SPEC)
N = LOOKBACK + 60
BASE = random_walk(N, seed=7)
BASE_FEATURES = fe.compute_features(BASE, SPEC)
HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return list(a.columns) == list(b.columns) and np.array_equal(a.to_numpy(), b.to_numpy(), equal_nan=True)


def test_columns_index_and_warmup(sp500_prices, spec):
    out = fe.compute_features(sp500_prices, spec)
    assert out.index.equals(sp500_prices.index)
    assert all(c.startswith("feat_") for c in out.columns)
    assert list(out.columns) == fe.validate_spec(spec)
    for name in ("feat_logret_5", "feat_sma_ratio_20", "feat_rsi_14", "feat_macd_hist_12_26_9"):
        assert name in out.columns
    assert (out.dtypes == np.float64).all()
    lookbacks = fe.feature_lookbacks(spec)
    assert max(lookbacks.values()) == fe.max_lookback(spec)
    for name, lb in lookbacks.items():
        col = out[name].to_numpy()
        assert np.isnan(col[:lb]).all(), name
        assert np.isfinite(col[lb:]).all(), name


def test_formulas_against_independent_references(sp500_prices, spec):
    out = fe.compute_features(sp500_prices, spec)
    c = sp500_prices["Close"]
    logc = np.log(c)
    r1 = logc.diff()
    ref = {
        "feat_logret_5": logc - logc.shift(5),
        "feat_sma_ratio_50": c / c.rolling(50).mean() - 1,
        "feat_realized_vol_20": r1.rolling(20).std(ddof=0),
        "feat_bb_width_20": 4 * c.rolling(20).std(ddof=0) / c.rolling(20).mean(),
        "feat_bb_pctb_20": (c - (c.rolling(20).mean() - 2 * c.rolling(20).std(ddof=0)))
        / (4 * c.rolling(20).std(ddof=0)),
    }
    lv = np.log1p(sp500_prices["Volume"])
    ref["feat_volume_z_20"] = (lv - lv.rolling(20).mean()) / lv.rolling(20).std(ddof=0)
    for name, expected in ref.items():
        np.testing.assert_allclose(out[name], expected, rtol=1e-6, atol=1e-9, err_msg=name)


def test_recursive_indicators_match_talib_on_long_history(sp500_prices, spec):
    """Windowed EMA/RSI/MACD/ATR stay close to TA-Lib's infinite-memory versions."""
    out = fe.compute_features(sp500_prices, spec).iloc[300:]
    h, lo, c = (sp500_prices[k].to_numpy() for k in ("High", "Low", "Close"))
    full = {
        "feat_ema_ratio_20": (c / talib.EMA(c, 20) - 1, 2e-4),
        "feat_rsi_14": (talib.RSI(c, 14), 0.5),
        "feat_macd_hist_12_26_9": (talib.MACD(c, 12, 26, 9)[2] / c, 1e-4),
        "feat_atr_ratio_14": (talib.ATR(h, lo, c, 14) / c, 2e-4),
    }
    for name, (expected, tol) in full.items():
        np.testing.assert_allclose(out[name], expected[300:], rtol=0, atol=tol, err_msg=name)
    assert out["feat_rsi_14"].between(0, 100).all()


def test_scale_free_in_price_level():
    scaled = BASE.copy()
    for col in ("Open", "High", "Low", "Close"):
        scaled[col] = BASE[col] * 37.5
    a = BASE_FEATURES.iloc[LOOKBACK:]
    b = fe.compute_features(scaled, SPEC).iloc[LOOKBACK:]
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-7, atol=1e-9)


@HYP
@given(
    t=st.integers(0, N - 2),
    data=st.data(),
)
def test_causality_future_bars_never_change_the_past(t, data):
    """Overwrite arbitrary bars after t with arbitrary valid bars: rows <= t bit-identical."""
    n_after = N - 1 - t
    rows = data.draw(st.lists(st.integers(t + 1, N - 1), min_size=1, max_size=n_after, unique=True))
    factor = data.draw(st.floats(0.05, 20.0))
    changed = BASE.copy()
    for col in ("Open", "High", "Low", "Close"):
        changed.iloc[rows, changed.columns.get_loc(col)] = BASE[col].iloc[rows] * factor
    changed.iloc[rows, changed.columns.get_loc("Volume")] = data.draw(st.floats(0, 1e12))
    after = fe.compute_features(changed, SPEC)
    assert _same(after.iloc[: t + 1], BASE_FEATURES.iloc[: t + 1])


@HYP
@given(t=st.integers(LOOKBACK + 1, N - 1), data=st.data())
def test_finite_memory_bars_before_lookback_never_matter(t, data):
    """Bars older than t - max_lookback are irrelevant to features at t, bit for bit —
    so live history of max_lookback + 1 bars reproduces the backtest exactly."""
    rows = data.draw(
        st.lists(st.integers(0, t - LOOKBACK - 1), min_size=1, max_size=t - LOOKBACK, unique=True)
    )
    factor = data.draw(st.floats(0.05, 20.0))
    changed = BASE.copy()
    changed.iloc[rows, :4] = BASE.iloc[rows, :4].to_numpy() * factor
    after = fe.compute_features(changed, SPEC)
    assert _same(after.iloc[[t]], BASE_FEATURES.iloc[[t]])
    truncated = fe.compute_features(BASE.iloc[t - LOOKBACK : t + 1], SPEC)
    assert _same(truncated.iloc[[-1]], BASE_FEATURES.iloc[[t]])


def test_max_lookback_is_tight_per_feature():
    """Each feature at t really reads bar t - lookback (the warm-up is not over-stated)."""
    t = N - 1
    for name, lb in fe.feature_lookbacks(SPEC).items():
        changed = BASE.copy()
        changed.iloc[t - lb, :] = BASE.iloc[t - lb, :].to_numpy() * np.array([1.3, 1.5, 1.1, 1.3, 4])
        after = fe.compute_features(changed, SPEC)[name].iloc[t]
        assert after != BASE_FEATURES[name].iloc[t], name


def test_short_history_is_all_nan_not_an_error():
    out = fe.compute_features(BASE.iloc[:10], SPEC)
    assert out.shape == (10, len(fe.validate_spec(SPEC)))
    assert out["feat_macd_hist_12_26_9"].isna().all()


def test_flat_prices_give_defined_values():
    flat = BASE.copy()
    flat[["Open", "High", "Low", "Close"]] = 50.0
    flat["Volume"] = 1000.0
    out = fe.compute_features(flat, SPEC).iloc[LOOKBACK:]
    assert np.isfinite(out.to_numpy()).all()
    assert (out["feat_bb_pctb_20"] == 0.5).all()
    assert (out["feat_volume_z_20"] == 0.0).all()


# ----------------------------------------------------------------------------- bad spec
def _with(indicators):
    return {"recursive_warmup": 3, "indicators": indicators}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            _with({"stochastic": {"periods": [14]}}),
            r"indicators\.stochastic: unknown parameter; allowed .*'rsi'",
        ),
        (_with({"rsi": {"periods": [0]}}), r"indicators\.rsi\.periods\[0\]: must be a positive integer"),
        (_with({"sma_ratio": {"periods": [10, -5]}}), r"indicators\.sma_ratio\.periods\[1\]: .*got -5"),
        (_with({"logret": {"periods": [1.5]}}), r"logret\.periods\[0\]: must be an integer"),
        (_with({"ema_ratio": {"periods": [1]}}), r"ema_ratio\.periods: periods must be >= 2, got 1"),
        (_with({"logret": {"periods": []}}), r"logret\.periods: must be a non-empty list"),
        (_with({"logret": {"periods": [5, 5]}}), r"logret\.periods: has duplicates"),
        (
            _with({"logret": {"period": [5]}}),
            r"logret\.period: unknown parameter; allowed parameters are \['periods'\]",
        ),
        (_with({"bbands": {"periods": [20], "nbdev": 0}}), r"bbands\.nbdev: .*greater than 0"),
        (
            _with({"macd_hist": {"fast": 26, "slow": 12, "signal": 9}}),
            r"macd_hist: fast \(26\) must be smaller",
        ),
        (_with({"macd_hist": {"fast": 12, "slow": 26, "signal": 0}}), r"macd_hist\.signal"),
        (_with({}), r"indicators: no indicator is selected"),
        (
            {"indicators": {"rsi": {"periods": [14]}}, "recursive_warmup": -1},
            r"recursive_warmup: must be an integer >= 0",
        ),
    ],
)
def test_bad_spec_names_the_parameter(spec, match):
    prefix = r"feature_engineering\.features\.(indicators\.)?"
    with pytest.raises(ParameterError, match=prefix + match):
        fe.validate_spec(spec)
    with pytest.raises(ValueError):
        fe.compute_features(BASE, spec)


# ----------------------------------------------------------------------------- bad prices
def test_bad_prices_name_column_and_row():
    bad = BASE.copy()
    bad.iloc[5, bad.columns.get_loc("Close")] = np.nan
    with pytest.raises(fe.PriceDataError, match=r"'Close' row 5 \(2000-01-10\)"):
        fe.compute_features(bad, SPEC)
    bad = BASE.copy()
    bad.iloc[3, bad.columns.get_loc("Low")] = -1.0
    with pytest.raises(fe.PriceDataError, match=r"'Low' row 3"):
        fe.compute_features(bad, SPEC)
    with pytest.raises(fe.PriceDataError, match=r"missing column\(s\) \['Volume'\]"):
        fe.compute_features(BASE.drop(columns="Volume"), SPEC)
    with pytest.raises(fe.PriceDataError, match="sorted and unique"):
        fe.compute_features(BASE.iloc[::-1], SPEC)
    with pytest.raises(fe.PriceDataError, match="DatetimeIndex"):
        fe.compute_features(BASE.reset_index(drop=True), SPEC)


def test_lookback_arithmetic_documented():
    lb = fe.feature_lookbacks(SPEC)
    w = SPEC["recursive_warmup"]
    assert lb["feat_logret_20"] == 20
    assert lb["feat_sma_ratio_50"] == 49
    assert lb["feat_ema_ratio_20"] == 19 + w * 20
    assert lb["feat_rsi_14"] == 14 + w * 27
    assert lb["feat_macd_hist_12_26_9"] == 26 + 9 - 2 + w * 26
    assert math.isfinite(fe.max_lookback(SPEC))
