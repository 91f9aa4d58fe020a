"""The real S&P 500 days every synthetic market is built from."""

from __future__ import annotations

import pandas as pd
import pytest

from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv
from tests.support.project import SP500_CSV


@pytest.fixture(scope="session")
def sp500() -> pd.DataFrame:
    prices, _ = normalise_prices(read_raw_csv(SP500_CSV), source=str(SP500_CSV))
    return prices
