"""The simple rules that exploit each planted structure (docs/markets.md).

Each rule is a function ``prices -> target position per bar`` (a Series named ``rule_position``
on the prices' index, values 0 = flat or 1 = long, like the default ``environment.positions``).
The position at bar t is decided after bar t's close from bars <= t only (causal), and is
filled at bar t+1's open by the environment. Bars without enough history are flat.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .days import check_number

__all__ = [
    "always_long",
    "hold_after_down_day",
    "hold_after_up_day",
    "low_volatility_filter",
    "trend_filter",
]


def _position(prices: pd.DataFrame, long: np.ndarray) -> pd.Series:
    return pd.Series(np.where(long, 1.0, 0.0), index=prices.index, name="rule_position")


def _log_returns(prices: pd.DataFrame) -> pd.Series:
    """Close-to-close log return of each bar (NaN on the first)."""
    return np.log(prices["Close"]).diff()


def always_long(prices: pd.DataFrame) -> pd.Series:
    """Buy-and-hold: the rule of a null market, where nothing beats the drift."""
    return _position(prices, np.ones(len(prices), dtype=bool))


def hold_after_up_day(prices: pd.DataFrame) -> pd.Series:
    """Long after a bar whose close is above the previous close (one-day momentum)."""
    return _position(prices, (_log_returns(prices) > 0).to_numpy())


def hold_after_down_day(prices: pd.DataFrame) -> pd.Series:
    """Long after a bar whose close is below the previous close (short-term mean reversion)."""
    return _position(prices, (_log_returns(prices) < 0).to_numpy())


def trend_filter(prices: pd.DataFrame, lookback: int = 20) -> pd.Series:
    """Long while the trailing ``lookback``-bar return ``Close_t / Close_{t-lookback} - 1`` is
    positive (time-series momentum on a slow trend)."""
    lookback = check_number("lookback", lookback, 1, 1000, integer=True, lo_open=False)
    ret = prices["Close"] / prices["Close"].shift(lookback) - 1.0
    return _position(prices, (ret > 0).to_numpy())


def low_volatility_filter(prices: pd.DataFrame, lookback: int = 20, max_vol: float = 0.0125) -> pd.Series:
    """Long while the trailing realised volatility (population std of the last ``lookback``
    close-to-close log returns, per bar, like the ``realized_vol`` feature) is below ``max_vol``;
    flat in high-volatility regimes."""
    lookback = check_number("lookback", lookback, 2, 1000, integer=True, lo_open=False)
    max_vol = check_number("max_vol", max_vol, 0.0, 1.0)
    vol = _log_returns(prices).rolling(lookback, min_periods=lookback).std(ddof=0)
    return _position(prices, (vol < max_vol).to_numpy())
