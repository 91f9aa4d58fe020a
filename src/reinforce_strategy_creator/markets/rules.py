"""The simple rules that exploit each planted structure (docs/markets.md), for N >= 1 assets.

Each rule is a function ``prices -> target per bar``: for one OHLCV series a Series named
``rule_position`` (0 = flat, 1 = long, like the default ``environment.positions``); for a panel
a date x ticker frame of weights (a per-ticker rule splits the capital equally, ``1/N`` for
each ticker it holds; the rotation rule holds one ticker). The target at bar t is decided after
bar t's close from bars <= t only (causal) and filled at bar t+1 by the environment. Bars
without enough history are flat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .days import MarketSpecError, check_number, is_panel

__all__ = [
    "always_long",
    "hold_after_down_day",
    "hold_after_up_day",
    "hold_followers_after_leader_up",
    "hold_trailing_leader",
    "hold_trailing_ranked",
    "low_volatility_filter",
    "rotation_oracle",
    "trailing_leaders",
    "trailing_ranked",
    "trend_filter",
]


def _closes(prices: pd.DataFrame) -> pd.DataFrame:
    """Date x ticker closes (one column for one series)."""
    return prices["Close"] if is_panel(prices) else prices[["Close"]]


def _position(prices: pd.DataFrame, weights: np.ndarray) -> pd.Series | pd.DataFrame:
    if not is_panel(prices):
        return pd.Series(weights[:, 0], index=prices.index, name="rule_position")
    return pd.DataFrame(weights, index=prices.index, columns=prices["Close"].columns)


def _equal(prices: pd.DataFrame, long: np.ndarray) -> pd.Series | pd.DataFrame:
    """Equal shares of the capital in the tickers held (1 for one series)."""
    return _position(prices, np.where(long, 1.0, 0.0) / long.shape[1])


def _log_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """Close-to-close log return of each bar and ticker (NaN on the first)."""
    return np.log(_closes(prices)).diff()


def always_long(prices: pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Buy-and-hold (equal weight for a panel): the rule of a null market."""
    return _equal(prices, np.ones(_closes(prices).shape, dtype=bool))


def hold_after_up_day(prices: pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Long a ticker after a bar whose close is above its previous close (one-day momentum)."""
    return _equal(prices, (_log_returns(prices) > 0).to_numpy())


def hold_after_down_day(prices: pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Long a ticker after a bar whose close is below its previous close (mean reversion)."""
    return _equal(prices, (_log_returns(prices) < 0).to_numpy())


def hold_followers_after_leader_up(prices: pd.DataFrame, leader: str) -> pd.Series | pd.DataFrame:
    """Equal shares in every ticker but ``leader`` after a bar on which ``leader`` closed above
    its previous close, cash otherwise (a lead-lag: the leader's move is passed on later)."""
    close = _closes(prices)
    if leader not in close.columns or close.shape[1] < 2:
        raise MarketSpecError(
            f"markets.leader: {leader!r} must be one of the tickers {list(close.columns)} of a panel "
            "of at least 2."
        )
    up = (_log_returns(prices)[leader] > 0).to_numpy()[:, None]
    followers = (close.columns != leader)[None, :]
    return _position(prices, np.where(up & followers, 1.0 / (close.shape[1] - 1), 0.0))


def trend_filter(prices: pd.DataFrame, lookback: int = 20) -> pd.Series | pd.DataFrame:
    """Long a ticker while its trailing ``lookback``-bar return ``Close_t / Close_{t-lookback} - 1``
    is positive (time-series momentum on a slow trend)."""
    lookback = check_number("lookback", lookback, 1, 1000, integer=True, lo_open=False)
    close = _closes(prices)
    ret = close / close.shift(lookback) - 1.0
    return _equal(prices, (ret > 0).to_numpy())


def low_volatility_filter(
    prices: pd.DataFrame, lookback: int = 20, max_vol: float | Sequence[float] = 0.0125
) -> pd.Series | pd.DataFrame:
    """Long a ticker while its trailing realised volatility (population std of the last
    ``lookback`` close-to-close log returns, per bar, like the ``realized_vol`` feature) is below
    ``max_vol`` (one number, or one per ticker); flat in high-volatility regimes."""
    lookback = check_number("lookback", lookback, 2, 1000, integer=True, lo_open=False)
    limits = [max_vol] if np.ndim(max_vol) == 0 else list(max_vol)
    limit = np.array([check_number("max_vol", v, 0.0, 1.0) for v in limits])
    vol = _log_returns(prices).rolling(lookback, min_periods=lookback).std(ddof=0)
    if len(limit) not in (1, vol.shape[1]):
        raise MarketSpecError(f"markets.max_vol: give one number or one per ticker ({vol.shape[1]}).")
    return _equal(prices, vol.to_numpy() < limit)


def trailing_leaders(close: np.ndarray, lookback: int) -> np.ndarray:
    """(T,) int: at each row t, the column with the best return over rows ``t - lookback .. t``
    (``trailing_ranked`` with one column selected); -1 where no column has both closes (the
    first ``lookback`` rows, or tickers not listed yet)."""
    selected = trailing_ranked(close, lookback)
    return np.where(selected.any(axis=1), selected.argmax(axis=1), -1)


def trailing_ranked(close: np.ndarray, lookback: int, n_selected: int = 1, worst: bool = False) -> np.ndarray:
    """(T, N) bool: at each row t, the ``n_selected`` columns with the best (``worst``: the worst)
    return over rows ``t - lookback .. t`` (closes up to t only; ties go to the first columns);
    no column where fewer than ``n_selected`` columns have both closes (the first ``lookback``
    rows, or tickers not listed yet). ``n_selected = 1`` gives ``trailing_leaders``' column."""
    c = np.asarray(close, dtype=np.float64)
    out = np.zeros(c.shape, dtype=bool)
    if c.shape[0] <= lookback:
        return out
    ret = c[lookback:] / c[:-lookback]
    ok = np.isfinite(ret)
    key = np.where(ok, ret if worst else -ret, np.inf)  # ascending: the selected come first
    picked = np.argsort(key, axis=1, kind="stable")[:, :n_selected]
    rows = np.flatnonzero(ok.sum(axis=1) >= n_selected)
    out[lookback + rows[:, None], picked[rows]] = True
    return out


def hold_trailing_ranked(
    prices: pd.DataFrame, lookback: int = 20, n_selected: int = 1, worst: bool = False
) -> pd.Series | pd.DataFrame:
    """Equal shares of the capital in the ``n_selected`` tickers with the best (``worst``: the
    worst) trailing ``lookback``-bar return (``trailing_ranked``); cash where they cannot be
    ranked yet. Cross-sectional momentum (the winners) or short-term reversal (the laggards)."""
    lookback = check_number("lookback", lookback, 1, 10**5, integer=True, lo_open=False)
    close = _closes(prices).to_numpy(dtype=np.float64)
    n_selected = check_number("n_selected", n_selected, 1, close.shape[1], integer=True, lo_open=False)
    selected = trailing_ranked(close, lookback, n_selected, worst)
    return _position(prices, selected / n_selected)


def hold_trailing_leader(prices: pd.DataFrame, lookback: int = 20) -> pd.Series | pd.DataFrame:
    """All-in on the ticker with the best trailing ``lookback``-bar return (``hold_trailing_ranked``
    with one ticker); cash where nothing can be ranked yet (the rotation's rule)."""
    return hold_trailing_ranked(prices, lookback, 1)


def rotation_oracle(close: np.ndarray, lookback: int):
    """``hold_trailing_leader`` as a ``replay_weights`` decider: ``decide(obs, bar) -> (L, N)``
    float64 weights, the same for every lane, from ``close[..bar]`` only.

    ``close`` must be the (T, N) closes of the panel being replayed (``panel.close``), row for
    row."""
    c = np.asarray(close, dtype=np.float64)
    if c.ndim != 2:
        raise MarketSpecError(f"markets.rotation_oracle: close must be (T, N), got shape {c.shape}")
    lookback = check_number("lookback", lookback, 1, 10**5, integer=True, lo_open=False)
    leaders = trailing_leaders(c, lookback)
    n_tickers = c.shape[1]

    def decide(obs, bar: int) -> np.ndarray:
        w = np.zeros((obs.shape[0], n_tickers))
        if leaders[bar] >= 0:
            w[:, leaders[bar]] = 1.0
        return w

    return decide
