"""Fixtures for the training tests (budgets and tables: ``tests/support/training.py``)."""

from __future__ import annotations

import pytest

from tests.support.training import sp500_model_input


@pytest.fixture(scope="session")
def tables():
    return sp500_model_input()
