"""Pure node functions for ``feature_engineering``: thin wrappers over
:mod:`reinforce_strategy_creator.features` (data in, data out, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from reinforce_strategy_creator import features as fe
from reinforce_strategy_creator.env import EnvConfig
from reinforce_strategy_creator.params.features import FeatureParams


def _bounds(config: Mapping[str, Any]) -> dict[str, tuple[pd.Timestamp | None, ...]]:
    return {
        name: tuple(None if v is None else pd.Timestamp(v) for v in pair)
        for name, pair in config["bounds"].items()
    }


def _plan(index: pd.DatetimeIndex, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return fe.plan_splits(
        index,
        _bounds(config),
        lookback=config["max_lookback"],
        embargo_bars=config["embargo_bars"],
        min_split_rows=config["min_split_rows"],
    )


def validate_inputs(
    primary_prices: pd.DataFrame, params: FeatureParams, environment: EnvConfig
) -> dict[str, Any]:
    """Check the prices and that the environment window fits every split before any heavy work
    (the parameter blocks themselves are validated when the run starts); return the resolved
    configuration used by the later nodes."""
    params, environment = FeatureParams.parse(params), EnvConfig.parse(environment)
    names = fe.validate_spec(params.features)
    lookback = fe.max_lookback(params.features)
    bounds = fe.validate_split_dates(params.splits)
    fe.validate_prices(primary_prices)
    config = {
        "spec": params.features.to_params(),
        "feature_names": names,
        "max_lookback": lookback,
        "bounds": {
            k: [None if v is None else v.date().isoformat() for v in pair] for k, pair in bounds.items()
        },
        "embargo_bars": fe.resolve_embargo(params.embargo_bars, lookback),
        "min_split_rows": params.min_split_rows,
        "scaler": params.scaler,
    }
    config["window"] = fe.check_window(environment.window, _plan(primary_prices.index, config))
    return config


def compute_feature_table(primary_prices: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """Unscaled ``feat_*`` columns over the whole history (warm-up rows NaN)."""
    return fe.compute_features(primary_prices, config["spec"])


def split_features(
    features: pd.DataFrame, primary_prices: pd.DataFrame, config: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Unscaled train / validation / test tables (``feat_*`` then raw OHLCV) and a summary."""
    plan = _plan(features.index, config)
    table = pd.concat([features, primary_prices[list(fe.PRICE_COLUMNS)]], axis=1)
    frames = [table.iloc[plan[name]["positions"]] for name in fe.SPLIT_NAMES]
    summary = {
        "max_lookback": config["max_lookback"],
        "embargo_bars": config["embargo_bars"],
        "environment_window": config["window"],
        "feature_names": config["feature_names"],
        "data_start": features.index[0].date().isoformat(),
        "data_end": features.index[-1].date().isoformat(),
        "splits": {
            name: {k: v for k, v in plan[name].items() if k != "positions"} for name in fe.SPLIT_NAMES
        },
    }
    return frames[0], frames[1], frames[2], summary


def fit_feature_scaler(train: pd.DataFrame, config: dict[str, Any]) -> dict[str, Any]:
    """Fit the scaler on the training rows only and return its JSON dict."""
    names = fe.feature_columns(train)
    scaler = fe.fit_scaler(train[names], config["scaler"])
    return fe.scaler_to_dict(
        scaler, names, fit_rows=len(train), fit_start=train.index[0], fit_end=train.index[-1]
    )


def make_model_input(split: pd.DataFrame, feature_scaler: dict[str, Any]) -> pd.DataFrame:
    """Scaled ``feat_*`` (float32) followed by raw OHLCV (float64)."""
    return fe.build_model_input(split[fe.feature_columns(split)], split, feature_scaler)
