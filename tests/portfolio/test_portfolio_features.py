"""Per-ticker raw causal features of a universe (docs/features.md) and the feature scaler."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.env.portfolio import PortfolioInputError
from reinforce_strategy_creator.features import compute_features, max_lookback
from reinforce_strategy_creator.panel import (
    PortfolioPanel,
    feature_warmup,
    first_feature_rows,
    fit_feature_scaler,
    portfolio_features,
)
from reinforce_strategy_creator.universe import MissingFieldsError, read_universe_csv
from tests.support.features import PARAMS_FILE
from tests.support.project import SP500_20_CSV, STOCKS_CSV

DEFAULT_SPEC = yaml.safe_load(PARAMS_FILE.read_text())["feature_engineering"]["features"]
#: every kind of indicator, short look-backs (fast), close-based and OHLV-based
SMALL_SPEC = {
    "recursive_warmup": 1,
    "indicators": {
        "logret": {"periods": [1, 3]},
        "realized_vol": {"periods": [4]},
        "sma_ratio": {"periods": [5]},
        "ema_ratio": {"periods": [4]},
        "rsi": {"periods": [4]},
        "macd_hist": {"fast": 3, "slow": 6, "signal": 2},
        "bbands": {"periods": [5], "nbdev": 2.0},
        "atr_ratio": {"periods": [3]},
        "volume_z": {"periods": [5]},
    },
}
CLOSE_ONLY_LEFT_OUT = {"feat_atr_ratio_3", "feat_volume_z_5"}


@pytest.fixture(scope="module")
def stocks():
    return read_universe_csv(STOCKS_CSV)


def _close_panel(seed: int, T: int = 90, N: int = 3, late: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, N)), axis=0))
    close[:late, N - 1] = np.nan  # the last ticker lists at row `late`
    return pd.DataFrame(close, index=pd.bdate_range("2010-01-04", periods=T), columns=["A", "B", "LATE"][:N])


# --------------------------------------------------------------------------- causality, listing
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 89), st.integers(0, 60))
def test_changing_closes_after_t_changes_no_feature_up_to_t(seed, t, late):
    close = _close_panel(seed, late=late)
    before = portfolio_features(close, SMALL_SPEC).features
    later = close.copy()
    later.iloc[t + 1 :] *= np.exp(np.random.default_rng(seed + 1).normal(0, 0.2, later.iloc[t + 1 :].shape))
    after = portfolio_features(later, SMALL_SPEC).features
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])  # bit for bit, NaN included
    if t + 1 < len(close):  # ... and the check can fail: later rows did change
        assert not np.array_equal(before[-1], after[-1])


def test_no_back_fill_before_listing_and_same_values_as_the_ticker_alone():
    close = _close_panel(4, T=120, late=37)
    panel = portfolio_features(close, SMALL_SPEC)
    feats = panel.features
    assert np.isnan(feats[:37, 2]).all()  # not listed: nothing
    alone = portfolio_features(close[["LATE"]].iloc[37:], SMALL_SPEC).features[:, 0]
    np.testing.assert_array_equal(feats[37:, 2], alone)  # its own bars only, as if it were alone
    warm = feature_warmup(SMALL_SPEC, ("Close",))
    assert warm == max(
        v for k, v in {"feat_macd_hist_3_6_2": 6 + 2 - 2 + 6, "feat_rsi_4": 4 + 7}.items()
    )  # recursive_warmup 1: MACD slow+signal-2+slow, RSI p + (2p-1)
    assert list(first_feature_rows(panel)) == [warm, warm, 37 + warm]
    assert np.isfinite(feats[warm:, :2]).all() and np.isnan(feats[warm - 1, :2]).any()


def test_dates_a_ticker_lacks_inside_its_range_stay_nan(stocks):
    close = stocks.field("Close").iloc[-300:].copy()
    close.iloc[150, 0] = np.nan  # AAPL has no bar that day
    panel = portfolio_features(close, DEFAULT_SPEC)
    assert np.isnan(panel.features[150, 0]).all() and np.isfinite(panel.features[151, 0]).all()
    # the next bar's 1-bar return spans the missing date (AAPL's own previous bar), nothing filled
    c = close.iloc[:, 0].to_numpy()
    assert panel.features[151, 0, 0] == pytest.approx(np.log(c[151] / c[149]), rel=1e-6)


# --------------------------------------------------------------------------- fields
def test_ohlcv_universe_matches_the_single_asset_features(stocks):
    panel = portfolio_features(stocks, SMALL_SPEC)
    assert set(CLOSE_ONLY_LEFT_OUT) <= set(panel.feature_names)
    for j, t in enumerate(stocks.tickers):
        own = stocks.ticker(t)
        ref = compute_features(own, SMALL_SPEC)[list(panel.feature_names)].to_numpy(np.float32)
        rows = stocks.prices.index.get_indexer(own.index)
        np.testing.assert_array_equal(panel.features[rows, j], ref, err_msg=t)
    first = dict(zip(stocks.tickers, first_feature_rows(panel), strict=True))
    dates = stocks.prices.index
    assert dates[first["GOOG"] - feature_warmup(SMALL_SPEC, stocks.fields)] == pd.Timestamp("2004-08-19")
    assert np.isnan(panel.features[: dates.get_loc(pd.Timestamp("2012-05-18")), 1]).all()  # FB


def test_close_only_leaves_out_ohlv_features_with_one_warning(stocks, caplog):
    with caplog.at_level(logging.WARNING):
        panel = portfolio_features(stocks.field("Close"), SMALL_SPEC)
    assert not set(panel.feature_names) & CLOSE_ONLY_LEFT_OUT
    full = portfolio_features(stocks, SMALL_SPEC)
    assert set(panel.feature_names) == set(full.feature_names) - CLOSE_ONLY_LEFT_OUT
    keep = [full.feature_names.index(n) for n in panel.feature_names]
    np.testing.assert_array_equal(panel.features, full.features[:, :, keep])  # same close features
    warnings = [r for r in caplog.records if "leaving out" in r.getMessage()]
    assert len(warnings) == 1
    assert "feat_atr_ratio_3 (needs High/Low)" in warnings[0].getMessage()
    assert "feat_volume_z_5 (needs Volume)" in warnings[0].getMessage()


def test_asking_for_an_ohlv_feature_on_close_only_data_is_an_error(stocks):
    with pytest.raises(MissingFieldsError, match=r"feat_volume_z_5 needs \['Volume'\]"):
        portfolio_features(stocks.field("Close"), SMALL_SPEC, requested=["feat_logret_1", "feat_volume_z_5"])
    portfolio_features(stocks, SMALL_SPEC, requested=["feat_volume_z_5"])  # fine with Volume


def test_a_spec_with_only_ohlv_features_on_close_only_data_is_an_error(stocks):
    spec = {"indicators": {k: None for k in SMALL_SPEC["indicators"]} | {"volume_z": {"periods": [5]}}}
    with pytest.raises(PortfolioInputError, match="no feature of the feature spec"):
        portfolio_features(stocks.field("Close"), spec)


@pytest.mark.slow
def test_default_spec_on_both_shipped_universes(stocks, caplog):
    with caplog.at_level(logging.WARNING):
        twenty = portfolio_features(read_universe_csv(SP500_20_CSV), DEFAULT_SPEC)
    assert not [r for r in caplog.records if "leaving out" in r.getMessage()]
    warm = max_lookback(DEFAULT_SPEC)
    assert twenty.features.shape == (8313, 20, 8) and twenty.features.dtype == np.float32
    assert np.isfinite(twenty.features[warm:]).all() and np.isnan(twenty.features[warm - 1]).any()
    five = portfolio_features(stocks, DEFAULT_SPEC)
    assert five.tickers == stocks.tickers and five.feature_names == twenty.feature_names
    listed = np.isfinite(five.close)
    assert np.isnan(five.features[~listed]).all()


# --------------------------------------------------------------------------- scaler
def test_scaler_pools_listed_tickers_on_training_rows_only():
    close = _close_panel(9, T=200, late=120)
    panel = portfolio_features(close, SMALL_SPEC)
    mean, std = fit_feature_scaler(panel, slice(0, 150))
    x = panel.features[:150].reshape(-1, panel.n_features).astype(np.float64)
    for k in range(panel.n_features):
        col = x[np.isfinite(x[:, k]), k]
        assert mean[k] == pytest.approx(col.mean(), rel=1e-5, abs=1e-7)
        assert std[k] == pytest.approx(col.std(), rel=1e-5, abs=1e-7)
    assert mean.shape == std.shape == (panel.n_features,) and mean.dtype == np.float32
    # rows after training change nothing; the training rows do
    moved = panel.features.copy()
    moved[150:] += 10
    again = PortfolioPanel(panel.close, moved, panel.tickers, panel.dates, panel.feature_names)
    np.testing.assert_array_equal(fit_feature_scaler(again, slice(0, 150))[0], mean)
    np.testing.assert_array_equal(fit_feature_scaler(again, np.arange(200) < 150)[0], mean)
    assert not np.array_equal(fit_feature_scaler(again, slice(0, 151))[0], mean)


def test_scaler_ignores_unlisted_tickers_values():
    close = _close_panel(2, T=100, late=60)
    panel = portfolio_features(close, SMALL_SPEC)
    zeros = np.nan_to_num(panel.features)  # an unlisted ticker shown as zeros, not NaN
    zeros[20:, :2] = panel.features[20:, :2]
    filled = PortfolioPanel(panel.close, zeros, panel.tickers, panel.dates, panel.feature_names)
    np.testing.assert_array_equal(
        fit_feature_scaler(filled, slice(20, 60))[0], fit_feature_scaler(panel, slice(20, 60))[0]
    )


def test_scaler_names_a_feature_without_values():
    panel = portfolio_features(_close_panel(3), SMALL_SPEC)
    with pytest.raises(PortfolioInputError, match="feat_macd_hist_3_6_2.*no finite value"):
        fit_feature_scaler(panel, slice(0, 8))  # logret_1 has values, MACD is still warming up
    with pytest.raises(PortfolioInputError, match="select no row"):
        fit_feature_scaler(panel, slice(5, 5))
    with pytest.raises(PortfolioInputError, match="do not select rows of a panel of 90 rows"):
        fit_feature_scaler(panel, np.ones(50, dtype=bool))
