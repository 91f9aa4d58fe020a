"""Features: indicators on trailing windows, chronological splits, and the scaler.

Plain library, no Kedro. ``indicators`` computes the causal, finite-memory features,
``splits`` cuts the rows chronologically with an embargo, ``scaling`` fits the scaler on
training rows and persists it as JSON. See docs/features.md.
"""

from .errors import FeatureEngineeringError, PriceDataError, ScalerFormatError, SplitConfigError
from .indicators import (
    KNOWN_INDICATORS,
    PRICE_COLUMNS,
    FeatureDef,
    compute_features,
    feature_defs,
    feature_lookbacks,
    max_lookback,
    validate_prices,
    validate_spec,
)
from .scaling import (
    FEATURE_PREFIX,
    SCALER_KINDS,
    build_model_input,
    data_fingerprint,
    feature_columns,
    feature_spec_sha256,
    fit_scaler,
    scale_features,
    scaler_from_dict,
    scaler_sha256,
    scaler_to_dict,
)
from .splits import SPLIT_NAMES, check_window, plan_splits, resolve_embargo, validate_split_dates

__all__ = [
    "FEATURE_PREFIX",
    "KNOWN_INDICATORS",
    "PRICE_COLUMNS",
    "SCALER_KINDS",
    "SPLIT_NAMES",
    "FeatureDef",
    "FeatureEngineeringError",
    "PriceDataError",
    "ScalerFormatError",
    "SplitConfigError",
    "build_model_input",
    "check_window",
    "compute_features",
    "data_fingerprint",
    "feature_columns",
    "feature_defs",
    "feature_lookbacks",
    "feature_spec_sha256",
    "fit_scaler",
    "max_lookback",
    "plan_splits",
    "resolve_embargo",
    "scale_features",
    "scaler_from_dict",
    "scaler_sha256",
    "scaler_to_dict",
    "validate_prices",
    "validate_spec",
    "validate_split_dates",
]
