"""Markets made from real days: null markets with no structure, and markets with one planted edge.

A statistical claim ("the gate fails when there is nothing to learn", "the agents find an edge
when there is one") can only be tested on markets whose truth is known. These markets are built
from real daily OHLCV bars resampled i.i.d., so they keep the drift, volatility, fat tails, gaps
and intraday ranges of real data, but have no structure of their own (``null_market``). One
structure can then be planted on top (``planted_momentum_market``), together with a simple rule
that exploits it.

Each real day ``d`` is cut into ratios that do not depend on the price level:
``gap = Open_d / Close_{d-1}``, ``high = High_d / Open_d``, ``low = Low_d / Open_d``,
``body = Close_d / Open_d`` and its ``Volume``. A market is a chain of days drawn with
replacement (numpy ``Generator`` seeded by ``seed``): ``Open_t = Close_{t-1} * gap``,
``Close_t = Open_t * body``, and High/Low stretched to contain both. The calendar is whatever
index is given (by default the source's own dates), so a market lays out like the default data:
the same splits, folds and paper-trading year apply to it.

Days whose Open is a stale copy of the previous Close (most S&P 500 days before 2006) are left
out with ``real_opens_only=True``: their zero gaps would make the overnight move of the market
unrealistically small.

Hand-written because no maintained library resamples OHLCV bars into synthetic markets with a
planted, known structure; everything is vectorised numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError

__all__ = [
    "MarketSpecError",
    "SyntheticMarket",
    "day_ratios",
    "null_market",
    "planted_momentum_market",
    "to_csv_frame",
]

OHLCV = ("Open", "High", "Low", "Close", "Volume")


class MarketSpecError(InputError):
    """A parameter of a synthetic market is out of range."""


@dataclass(frozen=True)
class SyntheticMarket:
    """Prices (``Open, High, Low, Close, Volume`` on a DatetimeIndex named ``date``), the rule that
    exploits the planted structure (target position decided at each bar's close), and what was
    planted."""

    prices: pd.DataFrame
    rule_position: pd.Series
    kind: str
    strength: float
    seed: int


def day_ratios(source: pd.DataFrame, real_opens_only: bool = True, tolerance: float = 1e-9) -> pd.DataFrame:
    """The level-free description of every real day of ``source`` (needs a previous close)."""
    missing = [c for c in OHLCV if c not in source.columns]
    if missing:
        raise MarketSpecError(f"markets: source prices lack column(s) {missing}; give an OHLCV table.")
    prev_close = source["Close"].shift(1)
    out = pd.DataFrame({
        "gap": source["Open"] / prev_close,
        "high": source["High"] / source["Open"],
        "low": source["Low"] / source["Open"],
        "body": source["Close"] / source["Open"],
        "volume": source["Volume"].astype(float),
    }, index=source.index).iloc[1:]
    if real_opens_only:
        stale = (source["Open"] - prev_close).abs().iloc[1:] <= tolerance * prev_close.iloc[1:]
        out = out[~stale.to_numpy()]
    if len(out) < 250:
        raise MarketSpecError(f"markets: only {len(out)} usable source days (real_opens_only={real_opens_only}); "
                              "give a longer history.")
    return out


def _draw(ratios: pd.DataFrame, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` days drawn i.i.d. with replacement, as log gap, log body, high/low ratios and volume."""
    r = ratios.to_numpy(dtype=float)[rng.integers(0, len(ratios), size=n)]
    log_gap = np.log(r[:, 0])
    log_gap[0] = 0.0  # the first bar opens at the initial price
    return {"log_gap": log_gap, "high": r[:, 1], "low": r[:, 2], "log_body": np.log(r[:, 3]), "volume": r[:, 4]}


def _assemble(index: pd.DatetimeIndex, days: dict[str, np.ndarray], initial_price: float) -> pd.DataFrame:
    close = initial_price * np.exp(np.cumsum(days["log_gap"] + days["log_body"]))
    open_ = close / np.exp(days["log_body"])
    hi = np.maximum(open_ * days["high"], np.maximum(open_, close))
    lo = np.minimum(open_ * days["low"], np.minimum(open_, close))
    return pd.DataFrame({"Open": open_, "High": hi, "Low": lo, "Close": close, "Volume": days["volume"]},
                        index=pd.DatetimeIndex(index, name="date"))


def _index(source: pd.DataFrame, index: pd.DatetimeIndex | None) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(source.index if index is None else index, name="date")


def null_market(source: pd.DataFrame, seed: int, *, index: pd.DatetimeIndex | None = None,
                real_opens_only: bool = True, initial_price: float = 100.0) -> SyntheticMarket:
    """Real days resampled i.i.d.: nothing to learn beyond the drift. Its rule is buy-and-hold."""
    idx = _index(source, index)
    days = _draw(day_ratios(source, real_opens_only), len(idx), np.random.default_rng(seed))
    return SyntheticMarket(_assemble(idx, days, initial_price), pd.Series(1.0, index=idx, name="rule_position"),
                           "null", 0.0, int(seed))


def planted_momentum_market(source: pd.DataFrame, seed: int, strength: float = 0.3, *,
                            index: pd.DatetimeIndex | None = None, real_opens_only: bool = True,
                            initial_price: float = 100.0) -> SyntheticMarket:
    """Real days resampled i.i.d., plus one-day momentum: the open-to-close move of day t gets
    ``strength`` times the close-to-close log return of day t-1. Exploited by "hold after an up
    day": decide at close t-1, fill at open t (``environment.fill_price: next_open``; the opens
    of these markets are real), so the position earns day t's planted intraday move."""
    if not np.isfinite(strength) or not 0 < strength < 2:
        raise MarketSpecError(f"markets.strength must be in (0, 2), got {strength!r}.")
    idx = _index(source, index)
    days = _draw(day_ratios(source, real_opens_only), len(idx), np.random.default_rng(seed))
    log_gap, log_body = days["log_gap"], days["log_body"]
    cc = np.zeros(len(idx))  # close-to-close log return of each day
    for t in range(1, len(idx)):  # sequential: day t's planted move needs day t-1's return
        log_body[t] += strength * cc[t - 1]
        cc[t] = log_gap[t] + log_body[t]
    rule = pd.Series(np.where(cc > 0, 1.0, 0.0), index=idx, name="rule_position")
    return SyntheticMarket(_assemble(idx, days, initial_price), rule, "momentum", float(strength), int(seed))


def to_csv_frame(prices: pd.DataFrame) -> pd.DataFrame:
    """The market as a raw price file (``Date`` ISO, OHLCV, ``Adj Close`` = ``Close``) that
    ``data_ingestion`` reads like any user file."""
    out = prices.copy()
    out.insert(0, "Date", out.index.strftime("%Y-%m-%d"))
    out["Adj Close"] = out["Close"]
    return out.reset_index(drop=True)
