"""Inputs for the paper-trading library tests and their subprocess workers: synthetic daily
bars and a deterministic artificial policy."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_prices(n: int, seed: int = 0, start: str = "2020-01-01", freq: str = "B") -> pd.DataFrame:
    """Random-walk daily bars with Open/Close (positive, float64)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    idx = pd.date_range(start, periods=n, freq=freq, name="date")
    return pd.DataFrame(
        {
            "Open": open_,
            "High": np.maximum(open_, close) * 1.001,
            "Low": np.minimum(open_, close) * 0.999,
            "Close": close,
            "Volume": np.full(n, 1e6),
        },
        index=idx,
    )


def alternating_policy(history: pd.DataFrame, state) -> float:
    """Deterministic artificial policy: long after an up close, short-ish after a down one."""
    if len(history) < 2:
        return 0.0
    return 0.9 if history["Close"].iloc[-1] >= history["Close"].iloc[-2] else -0.3
