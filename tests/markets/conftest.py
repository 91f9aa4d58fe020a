"""Sources of the market tests, one per shape of real day: one OHLCV series (N = 1, the embedded
S&P 500), an OHLCV panel (4 stocks) and a close-only panel (the 20 stocks)."""

from __future__ import annotations

import pandas as pd
import pytest

from reinforce_strategy_creator.universe import read_universe_csv
from tests.support.project import SP500_20_CSV, STOCKS_CSV


@pytest.fixture(scope="session")
def universe20() -> pd.DataFrame:
    """Closes of the shipped 20-stock panel (date x ticker, close only)."""
    return read_universe_csv(SP500_20_CSV).field("Close")


@pytest.fixture(scope="session")
def stocks4() -> pd.DataFrame:
    """The 5-stock OHLCV file less FB (listed late): a ``(field, ticker)`` panel of 4."""
    return read_universe_csv(STOCKS_CSV).prices.drop(columns="FB", level="ticker")


@pytest.fixture
def source(request, sp500, stocks4, universe20):
    """The source named by the test's parameter: ``one``, ``ohlcv4`` or ``close20``."""
    return {"one": sp500, "ohlcv4": stocks4, "close20": universe20}[request.param]
