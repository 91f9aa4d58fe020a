"""Fixtures for the features tests (``sp500_prices`` and ``stage_params`` are session-wide in
tests/conftest.py; helpers: ``tests/support/features.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def spec(stage_params) -> dict:
    return stage_params["features"]
