"""Fixtures for the environment tests (helpers: ``tests/support/env.py``)."""

from __future__ import annotations

import pytest
import torch

from reinforce_strategy_creator.env import MarketArrays
from tests.support.env import make_market

torch.set_num_threads(1)


@pytest.fixture
def market() -> MarketArrays:
    return make_market()
