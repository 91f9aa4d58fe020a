"""Fixtures for the features tests (``sp500_prices`` and ``stage_params`` are session-wide in
tests/conftest.py; helpers: ``tests/support/features.py``)."""

from __future__ import annotations

import pytest

from reinforce_strategy_creator.params.features import FeatureSpec


@pytest.fixture
def spec() -> dict:
    """Every indicator with the model's periods (``FeatureSpec()``), not the project's tuned
    selection in conf/base: these tests check each indicator."""
    return FeatureSpec().to_params()
