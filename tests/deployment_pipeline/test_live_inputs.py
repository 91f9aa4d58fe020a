"""Live observations are the environment's observations, and live features are feature_engineering's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.deployment.session import LiveFeatures
from reinforce_strategy_creator.env import (
    BatchedTradingCore,
    EnvConfig,
    MarketArrays,
    observation_from_window,
    update_entry_and_bars,
)
from reinforce_strategy_creator.features import compute_features, max_lookback, scale_features
from reinforce_strategy_creator.market_data import normalise_prices

from .world import project_params, raw_rows


def _market(T: int, F: int, seed: int) -> MarketArrays:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, T)))
    open_ = close * np.exp(rng.normal(0, 0.01, T))
    idx = pd.date_range("2020-01-01", periods=T, freq="B", name="date")
    df = pd.DataFrame(rng.normal(size=(T, F)).astype(np.float32), index=idx,
                      columns=[f"feat_{i}" for i in range(F)])
    for c, v in (("Open", open_), ("High", np.maximum(open_, close)), ("Low", np.minimum(open_, close)),
                 ("Close", close), ("Volume", np.ones(T))):
        df[c] = v
    return MarketArrays.from_frame(df)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), backend=st.sampled_from(["scalar", "torch"]),
       positions=st.sampled_from([(0, 1), (-1, 0, 1), (0, 0.5, 1)]),
       switches=st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_observation_and_bookkeeping_match_the_core_bit_for_bit(seed, backend, positions, switches):
    market = _market(80, 3, seed)
    cfg = EnvConfig(window=5, positions=positions, episode_length=None, obs_position=switches[0],
                    obs_unrealised=switches[1], obs_bars_held=switches[2], device="cpu")
    core = BatchedTradingCore(market, cfg, num_envs=1, autoreset=False, backend=backend)
    core.reset(starts=cfg.window - 1)
    rng = np.random.default_rng(seed)
    scalar = lambda x: float(x.reshape(-1)[0]) if isinstance(x, torch.Tensor) else float(x)  # noqa: E731
    for _ in range(60):
        t = int(scalar(core.t))
        expected = core.observe()
        expected = expected.numpy()[0] if isinstance(expected, torch.Tensor) else expected
        got = observation_from_window(
            market.features[t - cfg.window + 1 : t + 1], cfg, held=scalar(core.held),
            shares=scalar(core.shares), last_close=scalar(core.last_close), entry=scalar(core.entry),
            bars_held=scalar(core.bars))
        assert got.dtype == np.float32 and got.tobytes() == np.asarray(expected).tobytes()
        sh, entry, bars = scalar(core.shares), scalar(core.entry), scalar(core.bars)
        action = int(rng.integers(len(positions)))
        _, _, term, trunc, info = core.step(torch.tensor([action]) if backend == "torch" else action)
        delta = scalar(info["traded_shares"])
        fill = scalar(info["fill_price"]) if delta != 0 else 0.0
        assert update_entry_and_bars(sh, delta, fill, entry, bars) == (scalar(core.entry), scalar(core.bars))
        if scalar(term) or scalar(trunc):
            break


def test_observation_rejects_a_wrong_window():
    cfg = EnvConfig(window=4, device="cpu")
    with pytest.raises(ValueError, match="environment.window=4"):
        observation_from_window(np.zeros((3, 2)), cfg, held=0, shares=0, last_close=1, entry=1, bars_held=0)


def test_live_features_on_the_trailing_window_equal_feature_engineering_on_full_history():
    spec = project_params()["feature_engineering"]["features"]
    prices, _ = normalise_prices(raw_rows(start="2014-01-01"), source="sp500")
    full = compute_features(prices, spec).iloc[max_lookback(spec):]
    scaler = {"kind": "standard", "feature_names": list(full.columns),
              "center": full.loc[:"2016"].mean().tolist(), "scale": full.loc[:"2016"].std().tolist(),
              "fit_rows": 1, "fit_start": "2014-01-01", "fit_end": "2016-12-31", "sklearn_version": "x"}
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


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 80), shift=st.floats(-1, 1))
def test_ks_statistic_equals_scipy(seed, n, shift):
    from scipy.stats import ks_2samp

    from reinforce_strategy_creator.deployment.drift import ks_statistic

    rng = np.random.default_rng(seed)
    ref = rng.normal(size=300).round(2)  # ties included
    sample = (rng.normal(size=n) + shift).round(2)
    assert ks_statistic(np.sort(ref), sample) == pytest.approx(ks_2samp(ref, sample).statistic, abs=1e-12)


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
        live = pd.DataFrame({"feat_a": x[i:i + 60]})
        fixed_alerts += drift_report(ref, live, fixed)["psi_alert"].iloc[0]
        calib_alerts += drift_report(ref, live, fixed, per)["status"].iloc[0] == "drift"
    assert fixed_alerts > 10 * max(calib_alerts, 1) / 2  # fixed cut-offs cry wolf
    shifted = pd.DataFrame({"feat_a": x[3000:3060] + 3 * x.std()})
    assert drift_report(ref, shifted, fixed, per)["status"].iloc[0] == "drift"
