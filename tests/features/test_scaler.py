"""Scaler: fit on train only, JSON round trip without pickle, model-input layout."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import RobustScaler, StandardScaler

from reinforce_strategy_creator import features as fe
from reinforce_strategy_creator.pipelines.feature_engineering import nodes
from tests.support.features import OHLCV

ENV = {"window": 30}


def _run_to_scaler(prices, params):
    config = nodes.validate_inputs(prices, params, ENV)
    feats = nodes.compute_feature_table(prices, config)
    train, val, test, _ = nodes.split_features(feats, prices, config)
    return train, val, test, nodes.fit_feature_scaler(train, config)


@pytest.mark.parametrize("kind", ["standard", "robust"])
def test_validation_and_test_rows_do_not_influence_scaler(sp500_prices, stage_params, kind):
    stage_params["scaler"] = kind
    train, val, test, scaler = _run_to_scaler(sp500_prices, stage_params)
    wild = sp500_prices.copy()
    after = wild.index > pd.Timestamp("2012-12-31")
    rng = np.random.default_rng(3)
    shock = np.exp(rng.normal(0, 0.3, after.sum()))
    for col in ("Open", "High", "Low", "Close"):
        wild.loc[after, col] = wild.loc[after, col].to_numpy() * shock * 5
    wild.loc[after, "Volume"] = rng.lognormal(25, 3, after.sum())
    train2, val2, _, scaler2 = _run_to_scaler(wild, stage_params)
    assert not np.allclose(val2.filter(like="feat_"), val.filter(like="feat_"))
    pd.testing.assert_frame_equal(train2, train)
    assert scaler2 == scaler
    # identical to a scaler fit on the training rows alone
    names = fe.feature_columns(train)
    ref = (StandardScaler() if kind == "standard" else RobustScaler()).fit(train[names].to_numpy())
    center = ref.mean_ if kind == "standard" else ref.center_
    assert scaler["center"] == center.tolist() and scaler["scale"] == ref.scale_.tolist()
    assert scaler["fit_rows"] == len(train)
    assert scaler["fit_start"] == train.index[0].isoformat()
    assert scaler["fit_end"] == "2012-12-31T00:00:00"
    assert scaler["feature_names"] == names and scaler["kind"] == kind


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(fe.SCALER_KINDS),
    rows=st.integers(5, 60),
    cols=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_json_round_trip_is_exact(kind, rows, cols, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(rng.normal(0, 10, cols), rng.lognormal(0, 2, cols), (rows, cols))
    names = [f"feat_{i}" for i in range(cols)]
    scaler = fe.fit_scaler(pd.DataFrame(x, columns=names), kind)
    d = scaler_dict = fe.scaler_to_dict(
        scaler, names, fit_rows=rows, fit_start="2000-01-03", fit_end="2000-03-01"
    )
    loaded = json.loads(json.dumps(scaler_dict))
    assert set(d) == {"kind", "feature_names", "center", "scale", "fit_rows", "fit_start",
                      "fit_end", "sklearn_version"}  # fmt: skip
    rebuilt = fe.scaler_from_dict(loaded)
    probe = rng.normal(0, 100, (7, cols))
    assert np.array_equal(rebuilt.transform(probe), scaler.transform(probe))


def test_bad_scaler_dicts(sp500_prices, stage_params):
    _, val, _, scaler = _run_to_scaler(sp500_prices, stage_params)
    for mutate, match in [
        (lambda d: d.pop("scale"), "must have keys"),
        (lambda d: d.update(kind="minmax"), "kind = 'minmax'"),
        (lambda d: d.update(scale=d["scale"][:-1]), "lengths differ"),
        (lambda d: d["scale"].__setitem__(0, 0.0), "scale finite and > 0"),
        (lambda d: d["center"].__setitem__(0, float("nan")), "center must be finite"),
    ]:
        bad = json.loads(json.dumps(scaler))
        mutate(bad)
        with pytest.raises(fe.ScalerFormatError, match=match):
            fe.scaler_from_dict(bad)
    with pytest.raises(fe.ScalerFormatError, match="do not match feature_scaler.feature_names"):
        fe.scale_features(val.drop(columns=fe.feature_columns(val)[0]), scaler)
    with pytest.raises(fe.ScalerFormatError, match=r"feature_engineering\.scaler = 'minmax'"):
        fe.fit_scaler(val, "minmax")


def test_model_input_layout(sp500_prices, stage_params):
    train, val, _, scaler = _run_to_scaler(sp500_prices, stage_params)
    mi = nodes.make_model_input(val, scaler)
    names = fe.feature_columns(val)
    assert list(mi.columns) == names + OHLCV
    assert mi.index.name == "date" and mi.index.equals(val.index)
    assert (mi[names].dtypes == np.float32).all() and (mi[OHLCV].dtypes == np.float64).all()
    pd.testing.assert_frame_equal(mi[OHLCV], sp500_prices.loc[val.index, OHLCV])
    tr = nodes.make_model_input(train, scaler)[names].to_numpy(np.float64)
    if stage_params["scaler"] == "standard":
        np.testing.assert_allclose(tr.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(tr.std(axis=0), 1, atol=1e-4)
