"""The feature_engineering pipeline on real S&P 500 prices with SequentialRunner, and its
configuration files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from reinforce_strategy_creator import features as fe
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.features import FeatureParams
from reinforce_strategy_creator.pipelines.feature_engineering import create_pipeline
from tests.support.features import OHLCV
from tests.support.project import PROJECT_ROOT


class _Kept(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read what was saved."""

    def _release(self) -> None:
        pass


OUTPUTS = ("model_input_train", "model_input_validation", "model_input_test", "feature_scaler")


def _catalog(prices, params, env):
    datasets = {
        "primary_prices": MemoryDataset(prices),
        "params:feature_engineering": MemoryDataset(params, copy_mode="deepcopy"),
    }
    datasets["params:environment"] = MemoryDataset(env, copy_mode="deepcopy")
    for name in (*OUTPUTS, "feature_engineering.features", "feature_engineering.split_summary"):
        datasets[name] = _Kept()
    return DataCatalog(datasets)


def _run(prices, params, env):
    catalog = _catalog(prices, params, env)
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def test_pipeline_on_sp500(sp500_prices, stage_params):
    catalog = _run(sp500_prices, stage_params, {"window": 30})
    train, val, test = (catalog.load(f"model_input_{s}") for s in fe.SPLIT_NAMES)
    scaler = catalog.load("feature_scaler")
    summary = catalog.load("feature_engineering.split_summary")
    features = catalog.load("feature_engineering.features")
    lookback = fe.max_lookback(stage_params["features"])

    names = fe.validate_spec(stage_params["features"])
    assert features.index.equals(sp500_prices.index) and list(features.columns) == names
    for frame in (train, val, test):
        assert list(frame.columns) == names + OHLCV
        assert (frame[names].dtypes == np.float32).all()
        assert (frame[OHLCV].dtypes == np.float64).all()
        assert np.isfinite(frame.to_numpy(np.float64)).all()
        assert frame.index.name == "date" and frame.index.is_monotonic_increasing
    assert train.index[0] == sp500_prices.index[lookback]
    assert train.index[-1] <= pd.Timestamp("2012-12-31") < val.index[0]
    assert val.index[-1] <= pd.Timestamp("2014-12-31") < test.index[0]
    assert test.index[-1] <= pd.Timestamp("2017-12-31")
    assert len(sp500_prices.loc["2013-01-01" : val.index[0]]) == lookback + 1  # embargo
    assert scaler["fit_rows"] == len(train) and scaler["feature_names"] == names
    json.dumps(scaler)
    json.dumps(summary)
    assert summary["splits"]["validation"]["rows"] == len(val)
    assert summary["embargo_bars"] == lookback and summary["environment_window"] == 30
    # scaled values are the unscaled features through the persisted scaler
    recon = fe.scale_features(features.loc[test.index], scaler)
    pd.testing.assert_frame_equal(recon, test[names])


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda p, e: p["features"]["indicators"].update(ichimoku={"periods": [9]}),
         ParameterError, r"feature_engineering\.features\.indicators\.ichimoku: unknown parameter"),
        (lambda p, e: p["features"]["indicators"].update(rsi={"periods": [0]}),
         ParameterError, r"feature_engineering\.features\.indicators\.rsi\.periods\[0\]: must be a positive"),
        (lambda p, e: p["splits"]["test"].update(start="2014-06-01"),
         ParameterError,
         r"feature_engineering\.splits: test\.start \(2014-06-01\) must come after validation\.end"),
        (lambda p, e: p.update(embargo_bars=5),
         ParameterError, r"feature_engineering\.embargo_bars = 5 must be 'auto' or an integer >= "),
        (lambda p, e: p.update(scaler="minmax"),
         ParameterError, r"feature_engineering\.scaler: Input should be 'standard' or 'robust'"),
        (lambda p, e: e.update(window=1000),
         fe.SplitConfigError, r"environment\.window = 1000 .*'validation'"),
        (lambda p, e: e.update(positions=[1]),
         ParameterError, r"environment\.positions: .*including 0"),
        (lambda p, e: e.update(positions=[0, 0, 1]),
         ParameterError, r"environment\.positions: contains duplicates"),
        (lambda p, e: e.update(slippage_bps=-2),
         ParameterError, r"environment\.slippage_bps: Input should be greater than or equal to 0 \(got -2"),
    ],
)  # fmt: skip
def test_bad_parameters_fail_at_pipeline_start(sp500_prices, stage_params, mutate, error, match):
    env = {"window": 30}
    mutate(stage_params, env)
    catalog = _catalog(sp500_prices, stage_params, env)
    with pytest.raises(error, match=match):
        SequentialRunner().run(create_pipeline(), catalog)
    # nothing downstream was produced: the check runs before any feature is computed
    for name in ("feature_engineering.features", *OUTPUTS):
        assert not catalog.exists(name)


def test_config_files_declare_every_dataset_with_a_layer():
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
    catalog_cfg = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_feature_engineering.yml").read_text())
    pipe = create_pipeline()
    used = {d for d in pipe.datasets() if not d.startswith("params:")} - {"primary_prices"}
    assert used == set(catalog_cfg)
    for name, cfg in catalog_cfg.items():
        assert cfg["metadata"]["kedro-viz"]["layer"], name
    catalog = DataCatalog.from_config(catalog_cfg)  # every entry builds
    assert set(catalog.filter()) >= set(catalog_cfg)
    params = loader["parameters"]
    assert "params:feature_engineering" in pipe.inputs()
    FeatureParams.parse(params["feature_engineering"])  # the whole block is valid
    if "environment" in params:  # owned by the environment stage; checked when present
        assert "window" in params["environment"]
