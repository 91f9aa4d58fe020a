from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from reinforce_strategy_creator.env import EnvConfig, EnvConfigError, MarketArrays, MarketDataError
from tests.support.project import PROJECT_ROOT


def test_yaml_defaults_load_and_match_dataclass_defaults():
    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_environment.yml").read_text())
    cfg = EnvConfig.from_params(params)  # accepts the whole dict with the `environment` key
    assert cfg == EnvConfig.from_params(params["environment"])
    assert cfg.positions == (0.0, 1.0) and cfg.reward == "log_return"
    assert EnvConfig.from_params(cfg.to_params()) == cfg


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"positions": [1, -1]}, "environment.positions"),
        ({"positions": [0, 1, 1]}, "environment.positions"),
        ({"positions": [0, 2]}, "environment.positions"),
        ({"positions": "0,1"}, "environment.positions"),
        ({"commission_bps": -1}, "environment.commission_bps"),
        ({"slippage_bps": float("nan")}, "environment.slippage_bps"),
        ({"borrow_bps_per_bar": -0.1}, "environment.borrow_bps_per_bar"),
        ({"window": 0}, "environment.window"),
        ({"window": 2.5}, "environment.window"),
        ({"reward": "sharpe"}, "environment.reward"),
        ({"episode_length": 0}, "environment.episode_length"),
        ({"initial_capital": 0}, "environment.initial_capital"),
        ({"dsr_eta": 1.5}, "environment.dsr_eta"),
        ({"device": "tpu"}, "environment.device"),
        ({"obs_position": "yes"}, "environment.obs_position"),
        ({"windw": 3}, "environment.windw"),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(bad, name):
    with pytest.raises(EnvConfigError, match=name.replace(".", r"\.")) as exc:
        EnvConfig.from_params(bad)
    assert isinstance(exc.value, ValueError)


def test_episode_length_longer_than_data_is_rejected():
    from reinforce_strategy_creator.env import BatchedTradingCore
    from tests.support.env import make_market

    with pytest.raises(EnvConfigError, match="environment.episode_length"):
        BatchedTradingCore(make_market(50), EnvConfig(window=10, episode_length=45))


def _frame(n=30):
    idx = pd.bdate_range("2010-01-01", periods=n, name="date")
    df = pd.DataFrame({"feat_a": np.ones(n, dtype=np.float32)}, index=idx)
    df["Open"] = np.linspace(10, 11, n)
    df["High"] = df["Open"] + 1
    df["Low"] = df["Open"] - 1
    df["Close"] = np.linspace(10.1, 11.1, n)
    df["Volume"] = 1e6
    return df


def test_market_from_frame_reads_contract_columns():
    m = MarketArrays.from_frame(_frame())
    assert m.features.dtype == np.float32 and m.features.shape == (30, 1)
    assert m.open.dtype == np.float64 and m.feature_names == ("feat_a",)


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d.drop(columns=["Open"]), "'Open'"),
        (
            lambda d: d.assign(feat_a=np.where(np.arange(len(d)) == 7, np.nan, 1.0).astype(np.float32)),
            "feat_a.*row 7",
        ),
        (lambda d: d.assign(Close=np.where(np.arange(len(d)) == 3, -1.0, d["Close"])), "'Close'.*row 3"),
        (lambda d: d.drop(columns=["feat_a"]), "feat_"),
        (lambda d: d.reset_index(drop=True), "DatetimeIndex"),
        (lambda d: d.iloc[::-1], "sorted"),
    ],
)
def test_market_errors_name_column_and_row(mutate, pattern):
    with pytest.raises(MarketDataError, match=pattern):
        MarketArrays.from_frame(mutate(_frame()))
