"""Undoing a synthetic market (``reinforce_strategy_creator.markets``): the real rows it drew and
its own moves with the planted part taken out, as (bars, tickers) arrays for any N."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reinforce_strategy_creator.markets import SyntheticMarket, day_moves


def as_panel(frame: pd.DataFrame) -> pd.DataFrame:
    """A flat frame (one series) as a ``(name, ticker)`` panel of one ticker, ``asset``."""
    if isinstance(frame.columns, pd.MultiIndex):
        return frame
    return pd.concat({c: frame[[c]].set_axis(["asset"], axis=1) for c in frame.columns}, axis=1)


def unplanted(m: SyntheticMarket) -> dict[str, np.ndarray]:
    """The market's log moves per bar and ticker with ``truth`` undone (``vol_scale``, ``drift``):
    ``gap`` (bar 0 NaN), ``body``, ``high``, ``low``, ``volume`` for OHLCV, ``move`` (bar 0 NaN)
    close-only."""
    p, truth = as_panel(m.prices), as_panel(m.truth)
    scale, drift = truth["vol_scale"].to_numpy(), truth["drift"].to_numpy()
    log_close = np.log(p["Close"].to_numpy())
    nan = np.full((1, log_close.shape[1]), np.nan)
    if "Open" not in p.columns.get_level_values(0):
        return {"move": np.vstack([nan, (np.diff(log_close, axis=0) - drift[1:]) / scale[1:]])}
    log_open = np.log(p["Open"].to_numpy())
    return {
        "gap": np.vstack([nan, (log_open[1:] - log_close[:-1]) / scale[1:]]),
        "body": (log_close - log_open - drift) / scale,
        "high": (np.log(p["High"].to_numpy()) - log_open) / scale,
        "low": (np.log(p["Low"].to_numpy()) - log_open) / scale,
        "volume": p["Volume"].to_numpy(),
    }


def drawn_rows(m: SyntheticMarket, source, real_opens_only: bool = True) -> dict[str, np.ndarray]:
    """The real rows of ``source`` the market says it drew (``truth.source_date``), by name, for the
    market's tickers; bar 0's gap or move (it opens at the initial price) is NaN."""
    moves = as_panel(day_moves(source, real_opens_only))
    truth = as_panel(m.truth)
    tickers = list(truth["drift"].columns)
    dates = pd.DatetimeIndex(truth["source_date"].iloc[:, 0])
    drawn = dates.notna()
    out = {}
    for name in dict.fromkeys(moves.columns.get_level_values(0)):
        rows = np.full((len(dates), len(tickers)), np.nan)
        rows[drawn] = moves[name][tickers].loc[dates[drawn]].to_numpy()
        out[name] = rows
    if "gap" in out:
        out["gap"][0] = np.nan  # bar 0 opens at the initial price: its drawn gap is dropped
    return out
