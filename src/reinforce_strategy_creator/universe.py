"""A universe of tickers as one aligned price panel (docs/universe.md), importable without Kedro.

:func:`read_universe_csv` reads a *long* file (a ``Ticker``/``Symbol`` column, one row per
ticker and date) or a *wide* close table (a date column and one column per ticker) and
returns a :class:`Universe`: a panel indexed by date with ``(field, ticker)`` columns.
:func:`universe_from_long` and :func:`universe_from_wide` do the same for tables already in
memory, :func:`universe_from_yfinance` downloads (optional ``yfinance`` extra). :func:`ingest`
is the ``data_ingestion`` entry point: one instrument or a universe, chosen by
``data_ingestion.format`` / ``ticker`` / ``tickers``, always as one :class:`Universe` (a single
instrument is a universe of one; :meth:`Universe.instrument` is its ``primary_prices`` view).

Each ticker goes through the single-series rules of :mod:`.market_data` (the same rule
functions, not copies), with ``<source>, ticker <T>`` as the source, so every error names the
file, the ticker, the column and the rows. Then the tickers are aligned on the union of their
dates. Nothing is filled: a ticker is NaN before its first bar, after its last bar and on any
date inside its range where it has no bar (reported, as calendar gaps are for one series).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import market_data as md
from .errors import InputError
from .market_data import DataValidationError
from .yfinance_source import YFinanceSource

__all__ = [
    "FIELDS",
    "LARGE_MOVE",
    "FeatureSelection",
    "MissingFieldsError",
    "Universe",
    "features_for_fields",
    "ingest",
    "read_universe_csv",
    "universe_from_long",
    "universe_from_wide",
    "universe_from_yfinance",
]

logger = logging.getLogger(__name__)

#: The fields a panel can hold, in column order. A panel holds all five or ``Close`` alone.
FIELDS = ("Open", "High", "Low", "Close", "Volume")
#: A close-to-close move larger than this (either way) is listed in the report and warned about:
#: on data that is not split-adjusted it is usually a split (docs/universe.md, "Splits").
LARGE_MOVE = 0.40
#: A change of the Adj Close / Close factor by more than this ratio from one bar to the next is
#: reported as a split (dividends move the factor by a few per cent at most).
SPLIT_FACTOR_RATIO = 1.2
_FIELD_NAMES = {"open", "high", "low", "close", "volume", "adjclose", "adjustedclose", "ticker", "symbol"}
PARAM_PATH = "universe"  # errors name the keyword arguments as universe.<name>

_CLOSE_ONLY_RULES = (
    md._rule_dates,
    md._rule_values,
    md._rule_duplicates,
    md._rule_order,
    md._rule_min_rows,
)
_OHLCV_RULES = (
    md._rule_dates,
    md._rule_values,
    md._rule_bar_range,
    md._rule_duplicates,
    md._rule_order,
    md._rule_min_rows,
    md._rule_stale_opens,
)


class MissingFieldsError(InputError):
    """Features were asked for by name that need fields (Open/High/Low/Volume) the data lacks."""


# --------------------------------------------------------------------------- the panel
@dataclass(frozen=True)
class Universe:
    """An aligned price panel over several tickers.

    ``prices`` is indexed by ``date`` (tz-naive, sorted, unique: the union of all tickers'
    dates) with a two-level column index ``(field, ticker)``: fields in :data:`FIELDS` order,
    tickers in :attr:`tickers` order; float64, split/dividend adjusted where the input had an
    Adj Close column. A cell is NaN where the ticker has no bar on that date; nothing is
    back-filled or forward-filled.
    """

    prices: pd.DataFrame
    fields: tuple[str, ...]
    tickers: tuple[str, ...]
    first_date: Mapping[str, pd.Timestamp]
    last_date: Mapping[str, pd.Timestamp]
    source: str
    report: dict[str, Any] = field(default_factory=dict)

    def field(self, name: str) -> pd.DataFrame:
        """One field as a date x ticker frame (NaN where a ticker has no bar)."""
        if name not in self.fields:
            raise InputError(
                f"{self.source}: field {name!r} is not in this universe; it has {list(self.fields)}."
            )
        return self.prices[name]

    def ticker(self, name: str) -> pd.DataFrame:
        """One ticker's own bars (date x field): the dates where it has a bar, as a single series."""
        if name not in self.tickers:
            raise InputError(f"{self.source}: ticker {name!r} is not in this universe: {list(self.tickers)}.")
        frame = self.prices.xs(name, axis=1, level="ticker")
        return frame.loc[frame["Close"].notna().to_numpy()]

    def instrument(self) -> pd.DataFrame:
        """The ``primary_prices`` view of a universe of one (docs/contracts.md): its OHLCV bars,
        indexed by date, columns ``Open, High, Low, Close, Volume``."""
        if len(self.tickers) != 1:
            raise InputError(
                f"{self.source}: primary_prices is one instrument, but this universe holds "
                f"{len(self.tickers)} tickers {list(self.tickers)}. Pick one with --params "
                f"data_ingestion.ticker={self.tickers[0]}, or run the universe with --env portfolio."
            )
        if self.fields != FIELDS:
            raise InputError(
                f"{self.source}: ticker {self.tickers[0]} has only {list(self.fields)}; the single-asset "
                "cycle trades Open and reads High/Low/Volume. Give a file with Open, High, Low, Close "
                "and Volume columns, or run it as a universe with --env portfolio."
            )
        frame = self.ticker(self.tickers[0])
        frame.columns = list(frame.columns)
        return frame

    @property
    def tradable(self) -> pd.DataFrame:
        """Boolean date x ticker frame: True where the ticker has a bar on that date."""
        return self.prices["Close"].notna()

    @property
    def shared_dates(self) -> pd.DatetimeIndex:
        """The dates on which every ticker has a bar (never empty: that is an error at load)."""
        return self.prices.index[self.tradable.all(axis=1).to_numpy()]


# --------------------------------------------------------------------------- entry points
def ingest(
    raw: pd.DataFrame | None,
    *,
    source: str,
    settings: md.IngestionParams | Mapping[str, Any] | None = None,
    download_fn: Callable[..., pd.DataFrame] | None = None,
) -> Universe:
    """One instrument or a universe as one panel, by ``data_ingestion`` (docs/data.md).

    ``format`` ``auto`` reads a table with a Ticker/Symbol column as ``long``, one with
    Open/High/Low/Close/Volume columns as ``single`` and any other as ``wide``. A single series,
    or one ``ticker`` of a long file, goes through :func:`~.market_data.normalise_prices` and
    becomes a universe of one whose report is the single-series report (plus ``tickers`` and
    ``fields``); a long or wide table, or ``yfinance`` ``tickers``, becomes the universe of the
    rules applied per ticker. Errors name ``data_ingestion.<parameter>``.
    """
    s = md.IngestionParams.parse(settings)
    fmt = s.format if s.format != "auto" else _detect(raw)
    if fmt == "yfinance":
        return _from_yfinance(list(s.tickers or ()), s.start, s.end, s, download_fn=download_fn)
    if fmt == "single" or (fmt == "long" and s.ticker is not None):
        return _from_single(raw, source, s)
    if fmt == "long":
        return _from_long(raw, source, s.tickers, s)
    return _from_wide(raw, source, s.tickers, s)


def _detect(raw: Any) -> str:
    if not isinstance(raw, pd.DataFrame) or raw.shape[1] == 0:
        return "single"  # normalise_prices names what is wrong with it
    keys = {md._key(c) for c in raw.columns}
    if keys & md._ALIASES["Ticker"]:
        return "long"
    return "single" if keys & (_FIELD_NAMES - md._ALIASES["Ticker"]) else "wide"


def _from_single(raw: pd.DataFrame, source: str, settings: md.IngestionParams) -> Universe:
    prices, report = md.normalise_prices(raw, source=source, settings=settings)
    named = report["ticker"] or raw.attrs.get("ticker")  # a long file's ticker, a download's symbol
    ticker = str(named or Path(source).stem).strip().upper() or "ASSET"
    panel = pd.concat({f: prices[[f]].set_axis([ticker], axis=1) for f in FIELDS}, axis=1)
    panel.columns = panel.columns.set_names(["field", "ticker"])
    return Universe(
        prices=panel,
        fields=FIELDS,
        tickers=(ticker,),
        first_date={ticker: prices.index[0]},
        last_date={ticker: prices.index[-1]},
        source=source,
        report={**report, "tickers": [ticker], "fields": list(FIELDS)},
    )


def read_universe_csv(
    path: str | Path,
    *,
    tickers: Sequence[str] | None = None,
    min_rows: int = 2,
    gap_factor: float = 5.0,
    date_format: str | None = None,
    adjust: bool = True,
) -> Universe:
    """Read a long file (with a ``Ticker``/``Symbol`` column) or a wide close table into a panel.

    A file with a Ticker/Symbol column is long, any other is wide (a date column plus one column
    per ticker). ``tickers`` keeps those tickers, in that order (default: all, in file order).
    ``min_rows``, ``gap_factor``, ``date_format`` and ``adjust`` are the single-series rules'
    parameters (docs/data.md), applied per ticker; errors name them ``universe.<name>``.
    """
    raw = md.read_raw_csv(path)
    keys = {md._key(c) for c in raw.columns}
    reader = universe_from_long if keys & md._ALIASES["Ticker"] else universe_from_wide
    return reader(
        raw,
        source=str(path),
        tickers=tickers,
        min_rows=min_rows,
        gap_factor=gap_factor,
        date_format=date_format,
        adjust=adjust,
    )


def universe_from_long(
    raw: pd.DataFrame,
    *,
    source: str,
    tickers: Sequence[str] | None = None,
    min_rows: int = 2,
    gap_factor: float = 5.0,
    date_format: str | None = None,
    adjust: bool = True,
) -> Universe:
    """A panel from a long table: Ticker/Symbol, date, then ``Open, High, Low, Close, Volume``
    (optionally ``Adj Close``) or ``Close`` alone (optionally ``Adj Close``)."""
    return _from_long(raw, source, tickers, _settings(min_rows, gap_factor, date_format, adjust))


def _from_long(
    raw: pd.DataFrame, source: str, tickers: Sequence[str] | None, settings: md.IngestionParams
) -> Universe:
    _not_empty(raw, source)
    frame, found = md._map_columns(raw, source, required=("date", "Ticker", "Close"))
    fields = _fields(found, source)
    frame = frame.reset_index(drop=True)
    frame.insert(0, "_row", np.arange(len(frame)))
    symbols = frame["Ticker"].astype("string").str.strip().str.upper()
    blank = symbols.isna() | (symbols == "")
    if blank.any():
        md._fail(
            source, found["Ticker"], "missing ticker symbols", md._rows(frame, blank), "Every row needs one."
        )
    available = list(dict.fromkeys(symbols.tolist()))
    chosen = _choose(available, tickers, source)
    per_ticker = {}
    for t in chosen:
        sub = frame.loc[(symbols == t).to_numpy()].drop(columns="Ticker")
        per_ticker[t] = _clean_ticker(sub, found, fields, source, t, settings)
    return _align(per_ticker, fields, source, settings, rows_in=len(raw))


def universe_from_wide(
    raw: pd.DataFrame,
    *,
    source: str,
    tickers: Sequence[str] | None = None,
    min_rows: int = 2,
    gap_factor: float = 5.0,
    date_format: str | None = None,
    adjust: bool = True,
) -> Universe:
    """A close-only panel from a wide table: one date column, one column of closes per ticker.

    Empty cells before a ticker's first price and after its last one mean "not listed"; an empty
    cell between two prices is a missing value (an error naming the ticker and the row), as in
    a single series.
    """
    return _from_wide(raw, source, tickers, _settings(min_rows, gap_factor, date_format, adjust))


def _from_wide(
    raw: pd.DataFrame, source: str, tickers: Sequence[str] | None, settings: md.IngestionParams
) -> Universe:
    _not_empty(raw, source)
    frame = raw.reset_index() if not isinstance(raw.index, pd.RangeIndex) else raw
    dates = [c for c in frame.columns if md._key(c) in md._DATE_ALIASES]
    if len(dates) != 1:
        md._fail(
            source,
            None,
            "a wide table needs exactly one date column",
            f"found {[str(c) for c in dates]} among {[str(c) for c in frame.columns]}",
            "Name the date column Date and give every other column a ticker symbol.",
        )
    date_col = dates[0]
    ticker_cols = [c for c in frame.columns if c != date_col]
    # full field names only: one-letter tickers (C, V, L, O) are real symbols, not fields
    fieldlike = [str(c) for c in ticker_cols if md._key(c) in _FIELD_NAMES]
    if fieldlike:
        md._fail(
            source,
            None,
            "this looks like a long or single-series price file, not a wide close table",
            f"columns {fieldlike} are field names, not tickers",
            "Use read_raw_csv/normalise_prices for one series, or give one column per ticker.",
        )
    if not ticker_cols:
        md._fail(source, None, "no ticker columns", f"only {date_col!r}", "Add one column per ticker.")
    md.check_unique_columns(list(frame.columns), source)
    names = [str(c).strip().upper() for c in ticker_cols]
    chosen = _choose(names, tickers, source)
    column_of = dict(zip(names, ticker_cols, strict=True))
    per_ticker = {}
    for t in chosen:
        col = column_of[t]
        text = frame[col].astype("string").str.strip()
        present = np.flatnonzero((text.fillna("") != "").to_numpy(dtype=bool))
        if not len(present):
            md._fail(
                source, str(col), f"ticker {t} has no prices", "every cell is empty", "Remove the column."
            )
        rows = np.arange(present[0], present[-1] + 1)  # listed from its first to its last price
        sub = pd.DataFrame(
            {"_row": rows, "date": frame[date_col].to_numpy()[rows], "Close": frame[col].to_numpy()[rows]}
        )
        found = {"date": str(date_col), "Close": str(col)}
        per_ticker[t] = _clean_ticker(sub, found, ("Close",), source, t, settings)
    return _align(per_ticker, ("Close",), source, settings, rows_in=len(raw))


def universe_from_yfinance(
    tickers: Sequence[str],
    *,
    start: str,
    end: str | None = None,
    interval: str = "1d",
    cache_dir: str | Path = "data/01_raw",
    refresh: bool = False,
    download_fn: Callable[..., pd.DataFrame] | None = None,
    min_rows: int = 2,
    gap_factor: float = 5.0,
    adjust: bool = True,
) -> Universe:
    """A panel of Yahoo Finance downloads (optional extra ``pip install -e ".[yfinance]"``).

    Each ticker is fetched and cached exactly as the ``YFinanceDataset`` of docs/data.md does
    (the same :class:`~.yfinance_source.YFinanceSource`: ``auto_adjust=False``, one CSV per
    ticker under ``cache_dir``); a failed download is an error, never skipped. ``download_fn``
    replaces the network call (tests).
    """
    download = {
        "interval": interval,
        "cache_dir": str(cache_dir),
        "refresh": refresh,
        "download_fn": download_fn,
    }
    return _from_yfinance(tickers, start, end, _settings(min_rows, gap_factor, None, adjust), **download)


def _from_yfinance(
    tickers: Sequence[str], start: str | None, end: str | None, settings: md.IngestionParams, **download: Any
) -> Universe:
    """One :class:`~.yfinance_source.YFinanceSource` per ticker (``download``: its interval,
    cache_dir, refresh and download_fn), each through the rules."""
    if isinstance(tickers, str) or not tickers:
        raise InputError(
            f"universe_from_yfinance: tickers={tickers!r}; give a list such as ['AAPL', 'MSFT']."
        )
    per_ticker = {}
    sources = []
    for t in tickers:
        dataset = YFinanceSource(ticker=t, start=start, end=end, **download)
        raw = dataset.load()
        source = str(raw.attrs.get("source", dataset.cache_path))
        sources.append(source)
        frame, found = md._map_columns(raw, source)
        frame = frame.reset_index(drop=True)
        frame.insert(0, "_row", np.arange(len(frame)))
        per_ticker[t.strip().upper()] = _clean_ticker(
            frame, found, FIELDS, source, t.strip().upper(), settings
        )
    return _align(per_ticker, FIELDS, "; ".join(sources), settings, rows_in=None)


# --------------------------------------------------------------------------- features
@dataclass(frozen=True)
class FeatureSelection:
    """Which features a universe's fields can feed (:func:`features_for_fields`)."""

    kept: tuple[str, ...]
    left_out: Mapping[str, tuple[str, ...]]  # feature -> the fields it needs and the data lacks
    warning: str | None


def features_for_fields(
    spec: Any, fields: Iterable[str], *, requested: Iterable[str] = (), source: str = "universe"
) -> FeatureSelection:
    """Split the features of ``spec`` (``feature_engineering.features``) by the fields present.

    Features that need a missing field (ATR needs High/Low, volume_z needs Volume) are left out
    with **one** warning listing them; a feature the user asked for by name in ``requested``
    that needs a missing field raises :class:`MissingFieldsError` instead.
    """
    from .features.indicators import feature_defs  # TA-Lib: imported only when asked

    have = set(fields)
    defs = feature_defs(spec)
    names = [d.name for d in defs]
    asked = list(requested)
    unknown = [r for r in asked if r not in names]
    if unknown:
        raise MissingFieldsError(
            f"{source}: requested feature(s) {unknown} are not produced by the feature spec; "
            f"it produces {names}."
        )
    left_out = {d.name: tuple(f for f in d.inputs if f not in have) for d in defs}
    left_out = {k: v for k, v in left_out.items() if v}
    blocked = {r: left_out[r] for r in asked if r in left_out}
    if blocked:
        listed = "; ".join(f"{k} needs {list(v)}" for k, v in blocked.items())
        raise MissingFieldsError(
            f"{source}: the data has only {sorted(have)}, but you asked for {listed}. Use a file with "
            "those fields (Open/High/Low/Volume) or remove these features from the request."
        )
    warning = None
    if left_out:
        listed = ", ".join(f"{k} (needs {'/'.join(v)})" for k, v in left_out.items())
        warning = (
            f"{source}: the data has only {sorted(have)}; leaving out {len(left_out)} feature(s): {listed}"
        )
        logger.warning(warning)
    kept = tuple(n for n in names if n not in left_out)
    return FeatureSelection(kept=kept, left_out=left_out, warning=warning)


# --------------------------------------------------------------------------- internals
def _settings(min_rows: int, gap_factor: float, date_format: str | None, adjust: bool) -> md.IngestionParams:
    raw = {
        "filepath": None,
        "ticker": None,
        "min_rows": min_rows,
        "gap_factor": gap_factor,
        "date_format": date_format,
        "adjust": adjust,
    }
    return md.IngestionParams.parse(raw, PARAM_PATH)


def _not_empty(raw: pd.DataFrame, source: str) -> None:
    if not isinstance(raw, pd.DataFrame):
        raise DataValidationError(f"{source}: expected a table, got {type(raw).__name__}.")
    if len(raw) == 0 or raw.shape[1] == 0:
        md._fail(
            source,
            None,
            "the file is empty",
            f"{len(raw)} data rows, columns {[str(c) for c in raw.columns]}",
            "Provide a file with a header line and at least one row.",
        )


def _fields(found: Mapping[str, str], source: str) -> tuple[str, ...]:
    present = tuple(f for f in FIELDS if f in found)
    if present not in (FIELDS, ("Close",)):
        md._fail(
            source,
            None,
            "a universe holds Open, High, Low, Close and Volume, or Close alone",
            f"the file has {list(present)} (columns {dict(found)})",
            "Add the missing fields, or keep only the Close (and Adj Close) column.",
        )
    return present


def _choose(available: list[str], tickers: Sequence[str] | None, source: str) -> list[str]:
    if tickers is None:
        return available
    if isinstance(tickers, str) or not tickers:
        raise InputError(
            f"{source}: tickers={tickers!r}; give a list such as ['AAPL', 'MSFT'] or None for all."
        )
    wanted = [str(t).strip().upper() for t in tickers]
    missing = [t for t in wanted if t not in available]
    if missing:
        raise DataValidationError(
            f"{source}: ticker(s) {missing} not in the file; available tickers: {available}. "
            "Choose among them."
        )
    if len(set(wanted)) != len(wanted):
        raise InputError(f"{source}: tickers={list(tickers)} names a ticker twice.")
    return wanted


@dataclass
class _Ticker:
    prices: pd.DataFrame
    report: dict[str, Any]
    warnings: list[str]


def _clean_ticker(
    frame: pd.DataFrame,
    found: Mapping[str, str],
    fields: tuple[str, ...],
    source: str,
    ticker: str,
    settings: md.IngestionParams,
) -> _Ticker:
    """One ticker through the single-series rules; errors name ``<source>, ticker <T>``."""
    c = md._Cleaning(frame, f"{source}, ticker {ticker}", settings, None)
    c.found = {k: v for k, v in found.items() if k != "Ticker"}
    c.report.update({"ticker": ticker, "rows_selected": len(frame)})
    for rule in _OHLCV_RULES if fields == FIELDS else _CLOSE_ONLY_RULES:
        rule(c)
    splits = _splits(c.frame) if "Adj Close" in c.found else []
    md._rule_adjustment(c)
    if fields == ("Close",) and c.report["adjustments"]["applied"]:
        c.report["adjustments"]["method"] = "Close x (Adj Close / Close)"
    index = pd.DatetimeIndex(c.frame["date"].to_numpy(), name="date").as_unit("ns")
    prices = pd.DataFrame({f: c.frame[f].to_numpy(dtype="float64") for f in fields}, index=index)
    moves = _large_moves(prices["Close"])
    report = {
        "rows": len(prices),
        "first_date": index[0].isoformat(),
        "last_date": index[-1].isoformat(),
        "was_sorted": c.report["was_sorted"],
        "gaps": md._gaps(index, float(settings.gap_factor)),
        "adjustments": c.report["adjustments"],
        "splits_adjusted": splits if c.report["adjustments"]["applied"] else [],
        "splits_found_not_adjusted": [] if c.report["adjustments"]["applied"] else splits,
        "large_moves": moves,
        "rows_dropped": c.report["rows_dropped"],
    }
    if "stale_open" in c.report:
        report["stale_open"] = c.report["stale_open"]
    return _Ticker(prices, report, c.warnings)


def _splits(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Days where Adj Close / Close jumps: the split ratio (2.0 for a 2:1 split), from the file."""
    factor = (frame["Adj Close"] / frame["Close"]).to_numpy()
    ratio = factor[1:] / factor[:-1]
    hits = np.flatnonzero((ratio > SPLIT_FACTOR_RATIO) | (ratio < 1 / SPLIT_FACTOR_RATIO))
    dates = pd.DatetimeIndex(frame["date"].to_numpy())
    return [{"date": dates[i + 1].date().isoformat(), "ratio": round(float(ratio[i]), 4)} for i in hits]


def _large_moves(close: pd.Series) -> list[dict[str, Any]]:
    move = close.to_numpy()[1:] / close.to_numpy()[:-1] - 1.0
    hits = np.flatnonzero(np.abs(move) > LARGE_MOVE)
    return [{"date": close.index[i + 1].date().isoformat(), "move": round(float(move[i]), 4)} for i in hits]


def _align(
    per_ticker: Mapping[str, _Ticker],
    fields: tuple[str, ...],
    source: str,
    settings: md.IngestionParams,
    rows_in: int | None,
) -> Universe:
    tickers = tuple(per_ticker)
    first = {t: v.prices.index[0] for t, v in per_ticker.items()}
    last = {t: v.prices.index[-1] for t, v in per_ticker.items()}
    late, early = max(tickers, key=lambda t: first[t]), min(tickers, key=lambda t: last[t])
    shared = None
    for v in per_ticker.values():
        shared = v.prices.index if shared is None else shared.intersection(v.prices.index)
    if shared is None or not len(shared):
        ranges = ", ".join(f"{t} {first[t].date()}..{last[t].date()}" for t in tickers)
        raise DataValidationError(
            f"{source}: the tickers share no date, so no portfolio can hold them together: {ranges}. "
            f"{late} starts on {first[late].date()}"
            + (f", after {early}'s last bar ({last[early].date()})" if first[late] > last[early] else "")
            + ". Drop tickers (tickers=[...]) so that their histories overlap."
        )
    panel = pd.concat(
        {t: v.prices for t, v in per_ticker.items()}, axis=1, names=["ticker", "field"], sort=True
    )
    panel = panel.swaplevel(axis=1).reindex(
        columns=pd.MultiIndex.from_product([fields, tickers], names=["field", "ticker"])
    )
    panel = panel.sort_index()
    panel.index = pd.DatetimeIndex(panel.index.to_numpy(), name="date")  # no inferred freq: dates as read
    own: list[str] = []  # the panel's own warnings (each ticker's are in its rule warnings)
    inside = {}
    for t in tickers:
        span = panel.index[(panel.index >= first[t]) & (panel.index <= last[t])]
        missing = span.difference(per_ticker[t].prices.index)
        per_ticker[t].report["missing_inside"] = {
            "count": len(missing),
            "dates": [d.date().isoformat() for d in missing[: md.MAX_GAPS_LISTED]],
        }
        if len(missing):
            inside[t] = missing
    if inside:
        listed = "; ".join(f"{t}: {len(m)} (first {m[0].date()})" for t, m in inside.items())
        own.append(
            f"{source}: tickers without a bar on dates where others have one (left NaN, not filled): {listed}"
        )
    moves = {t: v.report["large_moves"] for t, v in per_ticker.items() if v.report["large_moves"]}
    if moves:
        listed = "; ".join(
            f"{t} " + ", ".join(f"{m['date']} {m['move']:+.0%}" for m in ms) for t, ms in moves.items()
        )
        own.append(
            f"{source}: close-to-close moves above {LARGE_MOVE:.0%}: {listed}. A split in prices that "
            "are not split-adjusted looks like this: check them (docs/universe.md, 'Splits')."
        )
    for w in own:
        logger.warning(w)
    warnings = [w for v in per_ticker.values() for w in v.warnings] + own
    report = {
        "source": source,
        "rows_in": rows_in,
        "fields": list(fields),
        "tickers": list(tickers),
        "date_start": panel.index[0].isoformat(),
        "date_end": panel.index[-1].isoformat(),
        "dates": len(panel.index),
        "shared_dates": len(shared),
        "shared_start": shared[0].isoformat(),
        "min_rows": settings.min_rows,
        "per_ticker": {t: v.report for t, v in per_ticker.items()},
        "warnings": warnings,
    }
    return Universe(
        prices=panel.astype("float64"),
        fields=fields,
        tickers=tickers,
        first_date=first,
        last_date=last,
        source=source,
        report=report,
    )
