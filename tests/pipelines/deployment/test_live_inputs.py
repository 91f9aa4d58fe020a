"""Live features are feature_engineering's, and live observations refuse a wrong window.

That live observations are the backtest's, bit for bit, is checked end to end in
tests/deployment/test_paper_backtest_parity.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.deployment_world import project_params, raw_rows
from reinforce_strategy_creator.deployment.session import LiveFeatures
from reinforce_strategy_creator.env import EnvConfig, observation_from_window
from reinforce_strategy_creator.features import (
    compute_features,
    max_lookback,
    scale_features,
)
from reinforce_strategy_creator.market_data import normalise_prices


def test_observation_rejects_a_wrong_window():
    cfg = EnvConfig(window=4, device="cpu")
    with pytest.raises(ValueError, match="environment.window=4"):
        observation_from_window(np.zeros((3, 2)), cfg, held=0, shares=0, last_close=1, entry=1, bars_held=0)


def test_live_features_on_the_trailing_window_equal_feature_engineering_on_full_history():
    spec = project_params()["feature_engineering"]["features"]
    prices, _ = normalise_prices(raw_rows(start="2014-01-01"), source="sp500")
    full = compute_features(prices, spec).iloc[max_lookback(spec) :]
    scaler = {
        "kind": "standard",
        "feature_names": list(full.columns),
        "center": full.loc[:"2016"].mean().tolist(),
        "scale": full.loc[:"2016"].std().tolist(),
        "fit_rows": 1,
        "fit_start": "2014-01-01",
        "fit_end": "2016-12-31",
        "sklearn_version": "x",
    }
    expected = scale_features(full, scaler)
    live = LiveFeatures(spec, scaler, rows=16)
    for end in ("2017-03-01", "2017-12-29", "2018-02-27"):
        history = prices.loc[:end]
        got = live(history)
        assert len(got) == 16 and got.index[-1] == history.index[-1]
        pd.testing.assert_frame_equal(got, expected.loc[got.index], check_exact=True, check_freq=False)
    # bar after bar, as a session walks the feed (rows kept from earlier bars are reused)
    live = LiveFeatures(spec, scaler, rows=16)
    for i in range(prices.index.get_loc(pd.Timestamp("2018-01-02")), len(prices)):
        got = live(prices.iloc[: i + 1])
        assert got.index[-1] == prices.index[i] and len(got) == 16
        pd.testing.assert_frame_equal(got, expected.loc[got.index], check_exact=True, check_freq=False)


def test_calibrated_thresholds_quiet_on_training_windows_and_alert_on_a_shift():
    from reinforce_strategy_creator.deployment.drift import (
        DriftThresholds,
        build_reference,
        calibrate_thresholds,
        drift_report,
    )

    rng = np.random.default_rng(3)
    # an autocorrelated feature, like a moving-average ratio
    x = pd.Series(rng.normal(size=4000)).rolling(30).mean().dropna().to_numpy()
    train = pd.DataFrame({"feat_a": x[:3000]})
    ref = build_reference(train, 10)
    fixed = DriftThresholds()
    per = calibrate_thresholds(ref, train, 60, 0.99, fixed)
    assert per["feat_a"][0] >= fixed.psi and per["feat_a"][1] >= fixed.ks
    fixed_alerts = calib_alerts = 0
    for i in range(3000, len(x) - 60, 20):  # unseen windows of the same process
        live = pd.DataFrame({"feat_a": x[i : i + 60]})
        fixed_alerts += drift_report(ref, live, fixed)["psi_alert"].iloc[0]
        calib_alerts += drift_report(ref, live, fixed, per)["status"].iloc[0] == "drift"
    assert fixed_alerts > 10 * max(calib_alerts, 1) / 2  # fixed cut-offs cry wolf
    shifted = pd.DataFrame({"feat_a": x[3000:3060] + 3 * x.std()})
    assert drift_report(ref, shifted, fixed, per)["status"].iloc[0] == "drift"
