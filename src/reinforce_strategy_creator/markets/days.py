"""Real days as level-free rows, drawn i.i.d. and laid end to end into a market of N >= 1 assets.

The building block of every synthetic market (docs/markets.md). A source is one OHLCV series
(a universe of one) or a panel of N tickers (``Universe.prices``: ``(field, ticker)`` columns,
or a date x ticker close table). A real *day* is a whole cross-sectional row: every ticker's
move on one real date on which all of them have a bar and a previous close. With OHLCV a
ticker's day is ``gap = Open_d / Close_{d-1}``, ``high = High_d / Open_d``,
``low = Low_d / Open_d``, ``body = Close_d / Open_d`` and its ``Volume``; close-only, it is
``move = Close_d / Close_{d-1}``. A market is a chain of such rows drawn with replacement; a
planted structure changes the log moves of the drawn rows (``vol_scale``, ``drift``) and
records what it changed in ``SyntheticMarket.truth``.
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
#: The first date of a market laid on business days (``n_bars`` given, no ``index``).
SYNTHETIC_START = "2000-01-03"
#: What a market with real opens asks of the environment: fill there (close-only: next close).
MARKET_ENVIRONMENT = MappingProxyType({"fill_price": "next_open"})


class MarketSpecError(InputError):
    """A parameter or the source of a synthetic market is unusable (the message names it)."""


@dataclass(frozen=True, eq=False)
class SyntheticMarket:
    """A synthetic market of N >= 1 assets and the truth about it.

    ``prices``: on a DatetimeIndex named ``date``; built from one OHLCV series, the columns
    ``Open, High, Low, Close, Volume``; built from a panel, ``(field, ticker)`` columns like
    ``Universe.prices`` (all of OHLCV, or ``Close`` alone for a close-only source).
    ``rule_position``: the target the rule decides at each bar's close (``rule(prices)``): a
    Series for one series, a date x ticker frame of weights for a panel.
    ``kind``: ``null``, ``momentum``, ``reversion``, ``trend``, ``volatility``, ``reversal``,
    ``rotation``, ``slow_momentum`` or ``lead_lag``.
    ``strength``: how strong the planted structure is (unit by kind, docs/markets.md).
    ``rule``: the causal rule, a function ``prices -> positions`` that reads bars <= t for bar t.
    ``params``: the structure's other parameters (regime lengths, look-backs, thresholds).
    ``truth``: per bar, the real day drawn (``source_date``), the multiplier of its log moves
    (``vol_scale``), the log return added to its close (``drift``) and the hidden ``regime``
    (per ticker for a panel: ``(quantity, ticker)`` columns); never shown to an agent.
    ``environment``: the ``environment`` parameters a run on this market needs.
    """

    prices: pd.DataFrame
    rule_position: pd.Series | pd.DataFrame
    kind: str
    strength: float
    seed: int
    rule: Callable[[pd.DataFrame], pd.Series | pd.DataFrame] | None = None
    params: Mapping[str, float] = field(default_factory=dict)
    truth: pd.DataFrame | None = None
    environment: Mapping[str, object] = field(default_factory=lambda: dict(MARKET_ENVIRONMENT))

    @property
    def name(self) -> str:
        """``<kind>-s<seed>``, e.g. ``momentum-s1``: stable across runs."""
        return f"{self.kind}-s{self.seed}"

    @property
    def close(self) -> pd.Series | pd.DataFrame:
        """The closes: a Series for one series, a date x ticker frame for a panel."""
        return self.prices["Close"]


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


def is_panel(prices: pd.DataFrame) -> bool:
    """True for a ``(field, ticker)`` panel, False for one flat OHLCV series."""
    return isinstance(prices.columns, pd.MultiIndex)


def source_fields(source) -> tuple[dict[str, pd.DataFrame], bool]:
    """The source as date x ticker frames by field (all of OHLCV, or ``Close`` alone) and whether
    it is one flat OHLCV series. Accepts a flat OHLCV frame, a ``Universe`` (or its ``prices``)
    or a date x ticker close frame."""
    prices = getattr(source, "prices", source)
    if not isinstance(prices, pd.DataFrame) or prices.shape[1] < 1:
        raise MarketSpecError(
            "markets: the source must be an OHLCV frame, a Universe or a date x ticker close frame, "
            f"got {type(source).__name__}."
        )
    flat = not is_panel(prices) and bool(set(prices.columns) & set(OHLCV))
    if flat:
        missing = [c for c in OHLCV if c not in prices.columns]
        if missing:
            raise MarketSpecError(f"markets: source prices lack column(s) {missing}; give an OHLCV table.")
        fields = {f: prices[[f]].set_axis(["asset"], axis=1) for f in OHLCV}
    elif is_panel(prices):
        have = [f for f in OHLCV if f in prices.columns.get_level_values(0)]
        names = OHLCV if set(have) == set(OHLCV) else ("Close",)
        if "Close" not in have:
            raise MarketSpecError(f"markets: the source panel has no Close field (fields {have}).")
        fields = {f: prices[f] for f in names}
    else:
        fields = {"Close": prices}
    for name, frame in fields.items():
        values = frame.to_numpy(dtype=np.float64)
        bad = np.isfinite(values) & (values <= 0) if name != "Volume" else np.isfinite(values) & (values < 0)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise MarketSpecError(
                f"markets: source ticker {frame.columns[c]!r} has {name} {float(values[r, c])!r} on "
                f"{pd.Timestamp(frame.index[r]).date()} (row {r}); prices must be > 0 and volumes >= 0."
            )
    return fields, flat


def day_moves(source, real_opens_only: bool = True, tolerance: float = 1e-9) -> pd.DataFrame:
    """Every usable real day of ``source`` as level-free log moves, one row per real date.

    Columns: one flat OHLCV series gives ``gap, high, low, body`` (the logs of
    ``Open_d / Close_{d-1}``, ``High_d / Open_d``, ``Low_d / Open_d``, ``Close_d / Open_d``) and
    ``volume``; a panel gives ``(name, ticker)`` columns with those names (OHLCV) or ``move``
    (close-only: ``log Close_d - log Close_{d-1}``). A day is usable when every ticker has a bar
    on it and a close on the previous row (late listings and gaps are skipped, never filled).
    With OHLCV and ``real_opens_only=True``, days on which a ticker's Open is a stale copy of the
    previous Close (most S&P 500 days before 2006) are left out: their zero gaps would make the
    overnight move unrealistically small, and a fill at the next open would not be a real one.
    """
    return fields_moves(*source_fields(source), real_opens_only, tolerance)


def fields_moves(
    fields: Mapping[str, pd.DataFrame], flat: bool, real_opens_only: bool = True, tolerance: float = 1e-9
) -> pd.DataFrame:
    """``day_moves`` of a source already split by ``source_fields``."""
    close = fields["Close"]
    prev_close = close.shift(1)
    if "Open" in fields:
        o = fields["Open"]
        parts = {
            "gap": np.log(o / prev_close),
            "high": np.log(fields["High"] / o),
            "low": np.log(fields["Low"] / o),
            "body": np.log(close / o),
            "volume": fields["Volume"].astype(float),
        }
    else:
        log_close = np.log(close.to_numpy(dtype=np.float64))
        moves = np.vstack([np.full((1, close.shape[1]), np.nan), log_close[1:] - log_close[:-1]])
        parts = {"move": pd.DataFrame(moves, index=close.index, columns=close.columns)}
    out = pd.concat(parts, axis=1).iloc[1:]
    usable = np.isfinite(out.to_numpy(dtype=np.float64)).all(axis=1)
    if real_opens_only and "Open" in fields:
        stale = ((fields["Open"] - prev_close).abs() <= tolerance * prev_close).iloc[1:].any(axis=1)
        usable &= ~stale.to_numpy()
    out = out[usable]
    if len(out) < 250:
        who = "the series" if flat else f"every ticker of {list(close.columns)}"
        opens = ", a real open" if real_opens_only and "Open" in fields else ""
        raise MarketSpecError(
            f"markets: only {len(out)} usable source days ({who} with a bar and a previous close"
            f"{opens}); at least 250 are needed: give a longer history or drop late-listed tickers."
        )
    return out.droplevel(1, axis=1) if flat else out


def source_volatility(moves: pd.DataFrame) -> np.ndarray:
    """(N,) standard deviation of each ticker's real close-to-close log returns (gap + body, or
    move) over the usable days."""
    if "move" in moves.columns:
        cc = moves["move"].to_numpy(dtype=float).reshape(len(moves), -1)
    else:
        cc = (moves["gap"].to_numpy(dtype=float) + moves["body"].to_numpy(dtype=float)).reshape(
            len(moves), -1
        )
    return np.array([np.std(np.ascontiguousarray(cc[:, j])) for j in range(cc.shape[1])])


def draw_days(moves: pd.DataFrame, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` bars of real days drawn i.i.d. with replacement, as (n, N) log moves ``log_gap``,
    ``log_body`` (and with OHLCV ``log_high``, ``log_low``, ``volume``) and the drawn date
    (``source_date``).

    Bar 0 opens at the initial price, so it has no gap: with OHLCV it is a drawn day whose gap is
    dropped (``n`` draws); close-only it has no move at all (``n - 1`` draws, ``source_date`` NaT).
    """
    dates = moves.index.to_numpy()

    def cols(name: str, pick: np.ndarray) -> np.ndarray:
        return moves[name].to_numpy(dtype=float).reshape(len(moves), -1)[pick]

    if "gap" in moves.columns:
        pick = rng.integers(0, len(moves), size=n)
        log_gap = cols("gap", pick)
        log_gap[0] = 0.0
        return {
            "log_gap": log_gap,
            "log_high": cols("high", pick),
            "log_low": cols("low", pick),
            "log_body": cols("body", pick),
            "volume": cols("volume", pick),
            "source_date": dates[pick],
        }
    pick = rng.integers(0, len(moves), size=n - 1)
    drawn = cols("move", pick)
    return {
        "log_gap": np.zeros((n, drawn.shape[1])),
        "log_body": np.vstack([np.zeros((1, drawn.shape[1])), drawn]),
        "source_date": np.concatenate([np.array(["NaT"], dtype=dates.dtype), dates[pick]]),
    }


def frame(index: pd.DatetimeIndex, columns: Mapping[str, np.ndarray], tickers, flat: bool) -> pd.DataFrame:
    """(n, N) arrays by name as one frame: flat columns for one series, ``(name, ticker)`` columns
    for a panel."""
    if flat:
        return pd.DataFrame({k: v[:, 0] for k, v in columns.items()}, index=index)
    parts = {k: pd.DataFrame(v, index=index, columns=list(tickers)) for k, v in columns.items()}
    return pd.concat(parts, axis=1, names=["field", "ticker"])


def assemble(
    index: pd.DatetimeIndex,
    days: Mapping[str, np.ndarray],
    initial_price: float,
    tickers,
    flat: bool,
    vol_scale: np.ndarray | float = 1.0,
    drift: np.ndarray | float = 0.0,
    regime: np.ndarray | int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prices and truth of a market whose bar t is the drawn row with its log moves (gap, body,
    high, low) times ``vol_scale[t]`` and ``drift[t]`` added to its log body (scalars, (n, 1)
    or (n, N) arrays). High/Low are stretched to contain Open and Close where the planted move leaves the
    real day's range; a close-only market has closes only, and its bar 0 (no move) no drift."""
    n, n_tickers = days["log_body"].shape
    vol_scale, drift = (
        np.broadcast_to(np.asarray(x, dtype=float), (n, n_tickers)) for x in (vol_scale, drift)
    )
    regime = np.broadcast_to(np.asarray(regime, dtype=np.int64), (n, n_tickers))
    if "log_high" not in days:  # close-only bar 0 has no move, so nothing planted on it either
        drift = np.vstack([np.zeros((1, n_tickers)), drift[1:]])
    log_body = vol_scale * days["log_body"] + drift
    close = initial_price * np.exp(np.cumsum(vol_scale * days["log_gap"] + log_body, axis=0))
    index = pd.DatetimeIndex(index, name="date")
    if "log_high" in days:
        open_ = close / np.exp(log_body)
        hi = np.maximum(open_ * np.exp(vol_scale * days["log_high"]), np.maximum(open_, close))
        lo = np.minimum(open_ * np.exp(vol_scale * days["log_low"]), np.minimum(open_, close))
        columns = {"Open": open_, "High": hi, "Low": lo, "Close": close, "Volume": days["volume"]}
    else:
        columns = {"Close": close}
    prices = frame(index, columns, tickers, flat)
    source_date = np.repeat(pd.DatetimeIndex(days["source_date"]).to_numpy()[:, None], n_tickers, axis=1)
    truth = frame(
        index,
        {"source_date": source_date, "vol_scale": vol_scale, "drift": drift, "regime": regime},
        tickers,
        flat,
    )
    return prices, truth


def to_csv_frame(prices: pd.DataFrame) -> pd.DataFrame:
    """The market as a raw price file ``data_ingestion`` reads like any user file: one series as
    ``Date`` (ISO), OHLCV, ``Adj Close`` = ``Close``; a panel as a long table (``Date``,
    ``Ticker``, its fields) that ``universe.read_universe_csv`` reads."""
    if not is_panel(prices):
        out = prices.copy()
        out.insert(0, "Date", out.index.strftime("%Y-%m-%d"))
        out["Adj Close"] = out["Close"]
        return out.reset_index(drop=True)
    long = prices.stack("ticker", future_stack=True).reset_index()
    long.insert(0, "Date", long.pop("date").dt.strftime("%Y-%m-%d"))
    long = long.rename(columns={"ticker": "Ticker"})
    long.columns.name = None
    return long.dropna(subset=["Close"]).sort_values(["Ticker", "Date"], kind="stable").reset_index(drop=True)
