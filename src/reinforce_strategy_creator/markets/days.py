"""Real days as level-free ratios, drawn i.i.d. and laid end to end into a market.

The building block of every synthetic market (docs/markets.md): a real day ``d`` becomes
``gap = Open_d / Close_{d-1}``, ``high = High_d / Open_d``, ``low = Low_d / Open_d``,
``body = Close_d / Open_d`` and its ``Volume``; a market is a chain of such days drawn with
replacement, on whatever calendar is given. A planted structure changes the log moves of the
drawn days (``vol_scale``, ``drift``) and records what it changed in ``SyntheticMarket.truth``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from ..errors import InputError

OHLCV = ("Open", "High", "Low", "Close", "Volume")
#: What every synthetic market asks of the environment: its opens are real, so fill there.
MARKET_ENVIRONMENT = MappingProxyType({"fill_price": "next_open"})


class MarketSpecError(InputError):
    """A parameter of a synthetic market is out of range (the message names it)."""


@dataclass(frozen=True, eq=False)
class SyntheticMarket:
    """A synthetic market and the truth about it.

    ``prices``: ``Open, High, Low, Close, Volume`` on a DatetimeIndex named ``date``.
    ``rule_position``: the target position the rule decides at each bar's close (``rule(prices)``).
    ``kind``: ``null``, ``momentum``, ``reversion``, ``trend`` or ``volatility``.
    ``strength``: how strong the planted structure is (unit by kind, docs/markets.md).
    ``rule``: the causal rule, a function ``prices -> positions`` that reads bars <= t for bar t.
    ``params``: the structure's other parameters (regime lengths, look-backs, thresholds).
    ``truth``: per bar, the real day drawn (``source_date``), the multiplier of its log moves
    (``vol_scale``), the log return added to its open-to-close move (``drift``) and the hidden
    ``regime``; never shown to an agent.
    ``environment``: the ``environment`` parameters a run on this market needs.
    """

    prices: pd.DataFrame
    rule_position: pd.Series
    kind: str
    strength: float
    seed: int
    rule: Callable[[pd.DataFrame], pd.Series] | None = None
    params: Mapping[str, float] = field(default_factory=dict)
    truth: pd.DataFrame | None = None
    environment: Mapping[str, object] = field(default_factory=lambda: dict(MARKET_ENVIRONMENT))

    @property
    def name(self) -> str:
        """``<kind>-s<seed>``, e.g. ``momentum-s1``: stable across runs."""
        return f"{self.kind}-s{self.seed}"


def check_number(
    name: str,
    value,
    lo: float,
    hi: float,
    *,
    integer: bool = False,
    lo_open: bool = True,
    hi_open: bool = False,
) -> float:
    """``value`` if it lies in the interval, else a ``MarketSpecError`` naming ``markets.<name>``."""
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    ok = ok_type and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        what = "an integer" if integer else "a number"
        span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise MarketSpecError(
            f"markets.{name} must be {what} in {span}, got {value!r}; "
            "see docs/markets.md for what it means and its default."
        )
    return int(value) if integer else float(value)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MarketSpecError(f"markets.seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def day_ratios(source: pd.DataFrame, real_opens_only: bool = True, tolerance: float = 1e-9) -> pd.DataFrame:
    """The level-free description of every real day of ``source`` (needs a previous close).

    Days whose Open is a stale copy of the previous Close (most S&P 500 days before 2006) are left
    out with ``real_opens_only=True``: their zero gaps would make the overnight move unrealistically
    small, and a fill at the next open would not be a real one.
    """
    missing = [c for c in OHLCV if c not in source.columns]
    if missing:
        raise MarketSpecError(f"markets: source prices lack column(s) {missing}; give an OHLCV table.")
    prev_close = source["Close"].shift(1)
    out = pd.DataFrame(
        {
            "gap": source["Open"] / prev_close,
            "high": source["High"] / source["Open"],
            "low": source["Low"] / source["Open"],
            "body": source["Close"] / source["Open"],
            "volume": source["Volume"].astype(float),
        },
        index=source.index,
    ).iloc[1:]
    if real_opens_only:
        stale = (source["Open"] - prev_close).abs().iloc[1:] <= tolerance * prev_close.iloc[1:]
        out = out[~stale.to_numpy()]
    if len(out) < 250:
        raise MarketSpecError(
            f"markets: only {len(out)} usable source days (real_opens_only={real_opens_only}); "
            "give a longer history."
        )
    return out


def source_volatility(ratios: pd.DataFrame) -> float:
    """Standard deviation of the real days' close-to-close log returns (log gap + log body)."""
    return float(np.std(np.log(ratios["gap"].to_numpy()) + np.log(ratios["body"].to_numpy())))


def draw_days(ratios: pd.DataFrame, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` days drawn i.i.d. with replacement: log gap, log body, log high, log low, volume and
    the drawn day's date (``source_date``). The first bar has no gap (it opens at the initial
    price)."""
    pick = rng.integers(0, len(ratios), size=n)
    r = ratios.to_numpy(dtype=float)[pick]
    log_gap = np.log(r[:, 0])
    log_gap[0] = 0.0
    return {
        "log_gap": log_gap,
        "log_high": np.log(r[:, 1]),
        "log_low": np.log(r[:, 2]),
        "log_body": np.log(r[:, 3]),
        "volume": r[:, 4],
        "source_date": ratios.index.to_numpy()[pick],
    }


def assemble(
    index: pd.DatetimeIndex,
    days: Mapping[str, np.ndarray],
    initial_price: float,
    vol_scale: np.ndarray | float = 1.0,
    drift: np.ndarray | float = 0.0,
    regime: np.ndarray | int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prices and truth of a market whose day t is the drawn day with its log moves (gap, body,
    high, low) times ``vol_scale[t]`` and ``drift[t]`` added to its log body. High/Low are
    stretched to contain Open and Close where the planted move leaves the real day's range."""
    n = len(index)
    vol_scale = np.broadcast_to(np.asarray(vol_scale, dtype=float), (n,))
    drift = np.broadcast_to(np.asarray(drift, dtype=float), (n,))
    log_body = vol_scale * days["log_body"] + drift
    close = initial_price * np.exp(np.cumsum(vol_scale * days["log_gap"] + log_body))
    open_ = close / np.exp(log_body)
    hi = np.maximum(open_ * np.exp(vol_scale * days["log_high"]), np.maximum(open_, close))
    lo = np.minimum(open_ * np.exp(vol_scale * days["log_low"]), np.minimum(open_, close))
    index = pd.DatetimeIndex(index, name="date")
    prices = pd.DataFrame(
        {"Open": open_, "High": hi, "Low": lo, "Close": close, "Volume": days["volume"]},
        index=index,
    )
    truth = pd.DataFrame(
        {
            "source_date": pd.DatetimeIndex(days["source_date"]),
            "vol_scale": vol_scale,
            "drift": drift,
            "regime": np.broadcast_to(np.asarray(regime, dtype=np.int64), (n,)),
        },
        index=index,
    )
    return prices, truth


def to_csv_frame(prices: pd.DataFrame) -> pd.DataFrame:
    """The market as a raw price file (``Date`` ISO, OHLCV, ``Adj Close`` = ``Close``) that
    ``data_ingestion`` reads like any user file."""
    out = prices.copy()
    out.insert(0, "Date", out.index.strftime("%Y-%m-%d"))
    out["Adj Close"] = out["Close"]
    return out.reset_index(drop=True)
