"""Real S&P 500 prices, synthetic random walks and the feature_engineering parameter file."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.support.project import PROJECT_ROOT, SP500_CSV

PARAMS_FILE = PROJECT_ROOT / "conf" / "base" / "parameters_feature_engineering.yml"
OHLCV = ["Open", "High", "Low", "Close", "Volume"]


def load_sp500() -> pd.DataFrame:
    raw = pd.read_csv(SP500_CSV)
    idx = pd.DatetimeIndex(pd.to_datetime(raw["Date"], format="%m/%d/%Y"), name="date")
    return pd.DataFrame({c: raw[c].to_numpy(np.float64) for c in OHLCV}, index=idx)


def random_walk(n: int, seed: int, start: str = "2000-01-03") -> pd.DataFrame:
    """Geometric random walk with consistent OHLC and positive volume (business days)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.012, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.004, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.005, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.005, n)))
    volume = rng.lognormal(15.0, 0.4, n)
    idx = pd.bdate_range(start, periods=n, name="date")
    return pd.DataFrame(
        {"Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume}, index=idx
    )
