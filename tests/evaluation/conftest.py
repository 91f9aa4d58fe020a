"""Fixtures for the evaluation tests (the ledger simulator: ``tests/support/ledger.py``)."""

from __future__ import annotations

import pytest

from tests.support.ledger import simulate_ledger


@pytest.fixture
def ledger():
    return simulate_ledger
