"""Errors of the feature stage: each names the parameter, column, row or split, and the fix."""

from __future__ import annotations

from ..errors import InputError


class FeatureEngineeringError(InputError):
    """Base class: bad input to feature engineering."""


class PriceDataError(FeatureEngineeringError):
    """The price table cannot be turned into features."""


class SplitConfigError(FeatureEngineeringError):
    """A split is too short, or the environment window does not fit a split."""


class ScalerFormatError(FeatureEngineeringError):
    """A scaler JSON dict is malformed or does not match the features."""
