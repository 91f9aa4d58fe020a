"""Turn a raw price file into a clean, adjusted, validated OHLCV table (docs/data.md).

:func:`normalise_prices` applies :data:`RULES` in order to a table read as strings and returns
the ``primary_prices`` frame of docs/contracts.md plus a JSON-able data quality report. Each rule
is a small function whose docstring says what it checks; every failure is a
:class:`DataValidationError` naming the source, column, rows, the parameter by its real path
(``data_ingestion.*`` or ``deployment.feed.*``) and the fix. Nothing is replaced by other data.

Hand-written because no maintained library validates OHLCV files with errors that name the
file, column and offending rows, and pandas' date inference silently guesses formats.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .params.data import IngestionParams

__all__ = [
    "DataValidationError",
    "IngestionParams",
    "check_csv_header",
    "check_unique_columns",
    "normalise_prices",
    "read_raw_csv",
    "stale_open_flags",
    "stale_open_report",
]

logger = logging.getLogger(__name__)

PRICE_COLUMNS = ("Open", "High", "Low", "Close")
OUTPUT_COLUMNS = (*PRICE_COLUMNS, "Volume")
MAX_LISTED = 5  # offending rows quoted in an error message
MAX_GAPS_LISTED = 50  # gaps listed in the quality report
#: Relative tolerance of "Open equals the previous Close": far below one price tick (a cent on
#: an index at 10,000 is 1e-6), far above the rounding of the adjustment multiplication (~1e-16).
STALE_OPEN_RTOL = 1e-9

# canonical name -> accepted spellings after _key() normalisation
_ALIASES = {
    "Open": {"open", "o"},
    "High": {"high", "h"},
    "Low": {"low", "l"},
    "Close": {"close", "c"},
    "Adj Close": {"adjclose", "adjustedclose", "adjcloseprice"},
    "Volume": {"volume", "vol", "v"},
    "Ticker": {"ticker", "symbol"},
}
_DATE_ALIASES = ("date", "datetime", "time", "timestamp", "unnamed0", "", "index")
_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}:?\d{2}|UTC)$", re.IGNORECASE)
_AUTO_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "ISO8601")


class DataValidationError(InputError):
    """A price file is unusable; the message names the file, column, rows and the fix."""


def _key(name: object) -> str:
    return re.sub(r"[\s_\-.:]+", "", str(name)).lower()


def check_unique_columns(names: Sequence[object], source: str) -> None:
    """Refuse a table whose column names repeat: two names are the same when they are equal
    after stripping surrounding whitespace and ignoring case (the ticker normalisation; the
    price-field matching of :func:`_map_columns` merges these too). Blank names are not compared.

    The error names the source, the repeated name and the 1-based column positions.
    """
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        text = str(name)
        if text.strip():
            positions.setdefault(text.strip().upper(), []).append(i)
    repeats = [where for where in positions.values() if len(where) > 1]
    if not repeats:
        return
    listed = "; ".join(
        f"{str(names[where[0]]).strip()!r} in columns "
        + " and ".join(f"{i + 1} ({str(names[i])!r})" for i in where)
        for where in repeats
    )
    first = str(names[repeats[0][0]]).strip()
    raise DataValidationError(
        f"{source}: repeated column name {listed}. A repeat is not another column: pandas would "
        f"load a second {first!r} as {first + '.1'!r} (a ticker or field that does not exist), and "
        "names that differ only in case or surrounding spaces are one ticker or field. Keep one "
        "column per name: delete or rename the repeat; nothing was loaded."
    )


#: ``pandas.read_csv`` arguments that decide where the header row is and how it is split
_HEADER_ARGS = (
    "sep",
    "delimiter",
    "encoding",
    "encoding_errors",
    "compression",
    "skiprows",
    "comment",
    "quotechar",
    "quoting",
    "escapechar",
    "doublequote",
    "dialect",
    "lineterminator",
    "skipinitialspace",
    "skip_blank_lines",
    "engine",
    "storage_options",
)


def check_csv_header(path: str | Path, source: str | None = None, **read_args: Any) -> None:
    """Refuse a CSV whose header row repeats a column name (:func:`check_unique_columns`).

    The header row is read as data (``header=None``), so pandas has not renamed a repeat yet;
    ``read_args`` are the arguments the file is read with (e.g. a catalog entry's
    ``load_args``): the ones that place and split the header row (``sep``, ``encoding``,
    ``compression``, ``skiprows``, ``header`` as a row number, ...) are honoured. A file read
    without a header row (``header=None`` or ``names=...``) has no names to check; an empty
    file is left to the reader's own error.
    """
    header = read_args.get("header", "infer")
    if read_args.get("names") is not None or header is None or isinstance(header, (list, tuple)):
        return
    row = 0 if header == "infer" else int(header)
    kwargs = {k: v for k, v in read_args.items() if k in _HEADER_ARGS}
    try:
        cells = pd.read_csv(
            path, header=None, nrows=row + 1, dtype=str, keep_default_na=False, na_filter=False, **kwargs
        )
    except pd.errors.EmptyDataError:
        return
    if len(cells) > row:
        check_unique_columns(cells.iloc[row].tolist(), source or str(path))


def read_raw_csv(path: str | Path) -> pd.DataFrame:
    """Read a price CSV as raw strings (no type or date inference), as the catalog does; a
    repeated column name is refused (:func:`check_csv_header`)."""
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found. Check the path you gave.")
    if path.stat().st_size == 0 or not path.read_text(errors="replace").strip():
        raise DataValidationError(
            f"{path}: the file is empty. Provide a CSV with a header line "
            "(Date, Open, High, Low, Close, Volume) and at least one row."
        )
    check_csv_header(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------- helpers
def _rows(frame: pd.DataFrame, mask: np.ndarray | pd.Series, column: str | None = None) -> str:
    """Describe the first offending rows: source row number (line in a CSV) and value."""
    mask = np.asarray(mask, dtype=bool)
    hits = frame.loc[mask]
    parts = []
    for _, rec in hits.head(MAX_LISTED).iterrows():
        row = int(rec["_row"])
        desc = f"row {row + 1} (line {row + 2})"
        if "_date_raw" in rec.index:
            desc += f" date {rec['_date_raw']!r}"
        if column is not None and f"_raw_{column}" in rec.index:
            desc += f" {column}={rec[f'_raw_{column}']!r}"
        parts.append(desc)
    more = f" and {len(hits) - MAX_LISTED} more" if len(hits) > MAX_LISTED else ""
    return "; ".join(parts) + more


def _fail(source: str, column: str | None, what: str, detail: str, fix: str) -> None:
    col = f", column {column!r}" if column else ""
    raise DataValidationError(f"{source}{col}: {what}: {detail}. {fix}")


def _map_columns(
    raw: pd.DataFrame, source: str, required: tuple[str, ...] = ("date", *OUTPUT_COLUMNS)
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rename recognised columns to canonical names; find the date column.

    ``required`` is the single-series default; the universe reader (universe.py) also accepts
    close-only tables and checks the field set itself.
    """
    frame = raw
    if not isinstance(frame.index, pd.RangeIndex):
        # a Parquet file or a download can carry the dates as the index
        frame = frame.reset_index()
    found: dict[str, str] = {}
    date_candidates = [c for c in frame.columns if _key(c) in _DATE_ALIASES]
    if len(date_candidates) > 1:
        _fail(
            source,
            None,
            "several date columns",
            f"{[str(c) for c in date_candidates]}",
            "Keep one date/time column (combine separate date and time columns into one).",
        )
    if date_candidates:
        found["date"] = str(date_candidates[0])
    for canonical, aliases in _ALIASES.items():
        matches = [c for c in frame.columns if _key(c) in aliases or _key(c) == _key(canonical)]
        if len(matches) > 1:
            _fail(
                source,
                canonical,
                "ambiguous column",
                f"{[str(c) for c in matches]} all match",
                "Keep only one.",
            )
        if matches:
            found[canonical] = str(matches[0])
    missing = [c for c in required if c not in found]
    if missing:
        _fail(
            source,
            None,
            "missing required columns",
            f"{missing} not found among {[str(c) for c in raw.columns]}",
            "A price file needs Date, Open, High, Low, Close and Volume columns (names are "
            "case-insensitive; Adj Close is optional). Rename the columns or use Volume=0 "
            "for a market without volume.",
        )
    rename = {v: k for k, v in found.items()}
    frame = frame.rename(columns=rename)[list(found)]
    return frame, found


def _select_ticker(
    frame: pd.DataFrame, source: str, ticker: str | None, param: str
) -> tuple[pd.DataFrame, str | None]:
    if "Ticker" not in frame.columns:
        if ticker is not None:
            _fail(
                source,
                None,
                f"parameter {param}={ticker!r} was given but the file has no Ticker/Symbol column",
                "it holds a single series",
                f"Set {param} to null for a single-series file, or point at a long file.",
            )
        return frame, None
    symbols = frame["Ticker"].astype("string").str.strip()
    available = sorted(symbols.dropna().unique().tolist())
    if ticker is None:
        _fail(
            source,
            "Ticker",
            f"the file holds several tickers and parameter {param} is not set",
            f"available tickers: {available}",
            f"Choose one, e.g. --params {param}=" + (available[0] if available else "XYZ"),
        )
    wanted = ticker.strip().upper()
    mask = symbols.str.upper() == wanted
    if not mask.any():
        _fail(
            source,
            "Ticker",
            f"ticker {ticker!r} (parameter {param}) not in the file",
            f"available tickers: {available}",
            f"Set {param} to one of them.",
        )
    return frame.loc[mask.to_numpy()].drop(columns="Ticker"), wanted


def _parse_dates(
    frame: pd.DataFrame,
    source: str,
    column: str,
    date_format: str | None,
    param: str,
) -> tuple[pd.Series, str]:
    """Parse the date column. Returns tz-naive timestamps and a note on the format used."""
    values = frame["date"]
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(
            None
        ), "datetime (tz-aware, converted to UTC, tz dropped)"
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values, "datetime"
    text = values.astype("string").str.strip()
    missing = text.isna() | (text == "")
    if missing.any():
        _fail(source, column, "missing dates", _rows(frame, missing), "Every row needs a date.")
    has_tz = text.str.contains(_TZ_SUFFIX, regex=True)
    if has_tz.any() and not has_tz.all():
        _fail(
            source,
            column,
            "some dates carry a time zone and some do not",
            _rows(frame, ~has_tz),
            "Use one convention for the whole file.",
        )
    formats = (date_format,) if date_format else _AUTO_FORMATS
    best, best_bad, best_fmt = None, None, None
    for fmt in formats:
        if fmt == "ISO8601":
            parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce").dt.tz_localize(None)
        else:
            parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        bad = parsed.isna()
        if best_bad is None or bad.sum() < best_bad.sum():
            best, best_bad, best_fmt = parsed, bad, fmt
        if not bad.any():
            break
    if best_bad.any():
        tried = (
            f"format {date_format!r} (parameter {param})"
            if date_format
            else ("m/d/Y, ISO dates and ISO date-times")
        )
        _fail(
            source,
            column,
            "unparseable dates",
            _rows(frame, best_bad) + f" (tried {tried})",
            f"Fix those rows, or set {param} to the file's strftime format.",
        )
    note = best_fmt
    if has_tz.any():
        note += " (time zone converted to UTC, then dropped)"
    return best, note


def _numeric(frame: pd.DataFrame, source: str, column: str, original: str, *, positive: bool) -> pd.Series:
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.astype("float64")
        frame[f"_raw_{column}"] = raw.astype("string")
        missing = values.isna()
        non_numeric = pd.Series(False, index=raw.index)
    else:
        text = raw.astype("string").str.strip()
        frame[f"_raw_{column}"] = text
        missing = text.isna() | (text == "") | text.str.lower().isin(["nan", "na", "null", "none", "n/a"])
        values = pd.to_numeric(text.where(~missing), errors="coerce").astype("float64")
        non_numeric = values.isna() & ~missing
    if missing.any():
        _fail(source, original, "missing values", _rows(frame, missing, column), "Fill or remove those rows.")
    if non_numeric.any():
        _fail(source, original, "non-numeric values", _rows(frame, non_numeric, column), "Fix those rows.")
    infinite = ~np.isfinite(values)
    if infinite.any():
        _fail(source, original, "infinite values", _rows(frame, infinite, column), "Fix those rows.")
    bad = values <= 0 if positive else values < 0
    if bad.any():
        what = "non-positive prices" if positive else "negative volume"
        _fail(
            source,
            original,
            what,
            _rows(frame, bad, column),
            "Prices must be > 0 and volume >= 0; fix those rows.",
        )
    return values


def _gaps(index: pd.DatetimeIndex, gap_factor: float) -> dict[str, Any]:
    if len(index) < 2:
        return {"median_spacing": None, "threshold": None, "count": 0, "longest": None, "gaps": []}
    spacing = pd.Series(index[1:] - index[:-1])
    median = spacing.median()
    threshold = median * gap_factor
    is_gap = (spacing > threshold).to_numpy()
    positions = np.flatnonzero(is_gap)
    gaps = [
        {"start": index[i].isoformat(), "end": index[i + 1].isoformat(), "spacing": str(spacing.iloc[i])}
        for i in positions
    ]
    longest = None
    if len(positions):
        i = int(positions[np.argmax(spacing.to_numpy()[positions])])
        longest = {
            "start": index[i].isoformat(),
            "end": index[i + 1].isoformat(),
            "spacing": str(spacing.iloc[i]),
        }
    return {
        "median_spacing": str(median),
        "threshold": str(threshold),
        "gap_factor": gap_factor,
        "count": len(positions),
        "longest": longest,
        "gaps": gaps[:MAX_GAPS_LISTED],
        "gaps_listed": min(len(gaps), MAX_GAPS_LISTED),
    }


# --------------------------------------------------------------------------- stale opens
def stale_open_flags(open_, close) -> np.ndarray:
    """Per bar: does ``open_[t]`` equal ``close[t-1]`` (relative tolerance ``STALE_OPEN_RTOL``)?

    Both arrays must be in one price basis (e.g. the file's unadjusted prices). Bar 0 has no
    previous close and is ``False``; callers leave it out of every fraction.
    """
    o = np.asarray(open_, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    flags = np.zeros(o.shape, dtype=bool)
    if o.size > 1:
        prev = c[:-1]
        flags[1:] = np.abs(o[1:] - prev) <= STALE_OPEN_RTOL * np.abs(prev)
    return flags


def stale_open_report(index: pd.DatetimeIndex, flags, threshold: float) -> dict[str, Any]:
    """The ``stale_open`` entry of the quality report from per-bar flags (``stale_open_flags``).

    Fractions are over the bars that have a previous bar (all but the first), per calendar
    year of the bar whose Open is checked. A year is listed when its fraction is strictly
    above ``threshold``.
    """
    flags = np.asarray(flags, dtype=bool)[1:]
    years = np.asarray(pd.DatetimeIndex(index).year)[1:]
    by_year: dict[str, dict[str, Any]] = {}
    above: list[int] = []
    for year in np.unique(years):
        in_year = years == year
        bars, stale = int(in_year.sum()), int(flags[in_year].sum())
        fraction = stale / bars
        by_year[str(int(year))] = {"bars": bars, "stale": stale, "fraction": fraction}
        if fraction > threshold:
            above.append(int(year))
    checked, stale_total = int(flags.size), int(flags.sum())
    return {
        "definition": (
            "Open equal to the previous bar's Close within a relative tolerance (rtol), compared in "
            "the file's unadjusted prices of the ingested rows; the first bar has no previous close "
            "and is not counted"
        ),
        "rtol": STALE_OPEN_RTOL,
        "threshold": float(threshold),
        "bars_checked": checked,
        "stale_bars": stale_total,
        "overall_fraction": stale_total / checked if checked else None,
        "years_above_threshold": above,
        "by_year": by_year,
    }


def _stale_open_warning(source: str, stale: dict[str, Any], parameter: str) -> str:
    years = ", ".join(
        f"{y} ({stale['by_year'][str(y)]['fraction']:.1%})" for y in stale["years_above_threshold"]
    )
    return (
        f"{source}: stale opens: in {len(stale['years_above_threshold'])} calendar year(s) more than "
        f"{stale['threshold']:.1%} of the bars have an Open equal to the previous bar's Close "
        f"({parameter}={stale['threshold']:g}): {years}; {stale['overall_fraction']:.1%} of all bars. "
        "On those bars the Open is a copy of a close the agent has already seen, so a fill 'at the next "
        "open' is not a real next-open fill and backtests filled there are optimistic. Fill at the next "
        "close instead (environment.fill_price: next_close) or use a file with real opens "
        "(see docs/data.md, 'Stale opens')."
    )


# --------------------------------------------------------------------------- the rules
@dataclass
class _Cleaning:
    """The table as it moves through the rules, and what they noted for the report."""

    frame: pd.DataFrame
    source: str
    settings: IngestionParams
    warn_stale_opens_from: pd.Timestamp | None
    found: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def param(self, key: str) -> str:
        """The dotted parameter path errors name (``data_ingestion.x`` or ``deployment.feed.x``)."""
        return f"{self.settings.prefix}.{key}"

    def warn(self, message: str) -> None:
        logger.warning(message)
        self.warnings.append(message)


def _rule_columns(c: _Cleaning) -> None:
    """Recognise the columns (case, spaces, ``_`` and ``-`` ignored) and the date column."""
    frame, c.found = _map_columns(c.frame, c.source)
    frame = frame.reset_index(drop=True)
    frame.insert(0, "_row", np.arange(len(frame)))
    c.frame = frame
    c.report["columns_found"] = c.found


def _rule_ticker(c: _Cleaning) -> None:
    """Reduce a long file (Ticker/Symbol column) to the requested ticker."""
    c.frame, c.report["ticker"] = _select_ticker(c.frame, c.source, c.settings.ticker, c.param("ticker"))
    c.report["rows_selected"] = len(c.frame)


def _rule_dates(c: _Cleaning) -> None:
    """Parse the dates (m/d/Y, ISO dates, ISO date-times, or ``date_format``)."""
    frame = c.frame.copy()
    frame["_date_raw"] = frame["date"].astype("string")
    frame["date"], c.report["date_format"] = _parse_dates(
        frame, c.source, c.found["date"], c.settings.date_format, c.param("date_format")
    )
    c.frame = frame


def _rule_values(c: _Cleaning) -> None:
    """Prices present, numeric and positive; volume present, numeric, not negative."""
    for name in (*PRICE_COLUMNS, "Adj Close"):
        if name in c.found:
            c.frame[name] = _numeric(c.frame, c.source, name, c.found[name], positive=True)
    if "Volume" in c.found:  # always for a single series; absent from close-only universe tables
        c.frame["Volume"] = _numeric(c.frame, c.source, "Volume", c.found["Volume"], positive=False)


def _rule_bar_range(c: _Cleaning) -> None:
    """``High >= max(Open, Close)`` and ``Low <= min(Open, Close)``."""
    frame = c.frame
    high_bad = frame["High"] < np.maximum(frame["Open"], frame["Close"])
    if high_bad.any():
        _fail(
            c.source,
            c.found["High"],
            "High below max(Open, Close)",
            _rows(frame, high_bad, "High"),
            "Fix those rows.",
        )
    low_bad = frame["Low"] > np.minimum(frame["Open"], frame["Close"])
    if low_bad.any():
        _fail(
            c.source,
            c.found["Low"],
            "Low above min(Open, Close)",
            _rows(frame, low_bad, "Low"),
            "Fix those rows.",
        )


def _rule_duplicates(c: _Cleaning) -> None:
    """Drop identical duplicate rows (with a warning); reject conflicting ones."""
    frame = c.frame
    value_cols = ["date", *(n for n in (*OUTPUT_COLUMNS, "Adj Close") if n in c.found)]
    identical = frame.duplicated(subset=value_cols, keep="first")
    clash = frame.loc[~identical, "date"].duplicated(keep=False)
    if clash.any():
        _fail(
            c.source,
            c.found["date"],
            "conflicting duplicate timestamps (same date, different values)",
            _rows(frame.loc[~identical], clash),
            "Keep exactly one row per timestamp.",
        )
    c.report["rows_dropped"] = []
    if identical.any():
        count = int(identical.sum())
        c.warn(f"{c.source}: dropped {count} identical duplicate rows ({_rows(frame, identical)})")
        dates = frame.loc[identical, "date"].head(MAX_GAPS_LISTED)
        c.report["rows_dropped"].append(
            {"reason": "identical duplicate row", "count": count, "dates": [d.isoformat() for d in dates]}
        )
        c.frame = frame.loc[~identical.to_numpy()]


def _rule_order(c: _Cleaning) -> None:
    """Sort unsorted rows by date (with a warning)."""
    frame = c.frame
    c.report["was_sorted"] = bool(frame["date"].is_monotonic_increasing)
    if not c.report["was_sorted"]:
        out_of_order = frame["date"] < frame["date"].cummax()
        c.warn(
            f"{c.source}, column {c.found['date']!r}: timestamps are not in increasing order "
            f"(first out-of-order: {_rows(frame, out_of_order)}); rows were sorted by date"
        )
        c.frame = frame.sort_values("date", kind="stable")


def _rule_min_rows(c: _Cleaning) -> None:
    """At least ``min_rows`` usable rows."""
    rows, ticker, minimum = len(c.frame), c.report["ticker"], c.settings.min_rows
    c.report["rows_out"] = rows
    if rows < minimum:
        _fail(
            c.source,
            None,
            "too few rows",
            f"{rows} usable rows"
            + (f" for ticker {ticker}" if ticker else "")
            + f", parameter {c.param('min_rows')}={minimum}",
            f"Provide a longer history or lower {c.param('min_rows')}.",
        )


def _rule_stale_opens(c: _Cleaning) -> None:
    """Count stale opens per year; warn about years above threshold.

    Compared in the file's own prices: equal to comparing the adjusted Open with the previous
    Close in the bar's own adjustment basis, so an ex-dividend or split day between the two
    bars cannot hide a copied open.
    """
    frame = c.frame
    flags = stale_open_flags(frame["Open"].to_numpy(), frame["Close"].to_numpy())
    stale = stale_open_report(pd.DatetimeIndex(frame["date"]), flags, float(c.settings.stale_open_threshold))
    c.report["stale_open"] = stale
    since = c.warn_stale_opens_from
    warn_years = [
        y for y in stale["years_above_threshold"] if since is None or int(y) >= pd.Timestamp(since).year
    ]
    if warn_years:
        only = {**stale, "years_above_threshold": warn_years}
        c.warn(_stale_open_warning(c.source, only, c.param("stale_open_threshold")))


def _rule_adjustment(c: _Cleaning) -> None:
    """Scale prices by ``Adj Close / Close`` and volume by its inverse (when ``adjust``)."""
    if "Adj Close" not in c.found:
        c.report["adjustments"] = {
            "applied": False,
            "method": None,
            "rows_adjusted": 0,
            "note": "no Adj Close column; prices used as given",
        }
        return
    frame = c.frame
    factor = (frame["Adj Close"] / frame["Close"]).to_numpy()
    differs = ~np.isclose(factor, 1.0, rtol=1e-9, atol=0.0)
    adjustment: dict[str, Any] = {
        "applied": False,
        "method": None,
        "rows_adjusted": 0,
        "adj_close_column": c.found["Adj Close"],
        "rows_differing": int(differs.sum()),
        "factor_min": float(factor.min()),
        "factor_max": float(factor.max()),
    }
    if c.settings.adjust and differs.any():
        for name in PRICE_COLUMNS:
            if name in c.found:  # close-only universe tables have Close alone
                frame[name] = frame[name].to_numpy() * factor
        if "Volume" in c.found:
            frame["Volume"] = frame["Volume"].to_numpy() / factor
        adjustment.update(
            {
                "applied": True,
                "rows_adjusted": int(differs.sum()),
                "method": ("Open/High/Low/Close x (Adj Close / Close); Volume / (Adj Close / Close)"),
            }
        )
    elif differs.any():
        c.warn(
            f"{c.source}: Adj Close differs from Close on {int(differs.sum())} rows but "
            f"{c.param('adjust')} is false; prices are NOT split/dividend adjusted"
        )
    c.report["adjustments"] = adjustment


#: The rules, in the order they run; each reads and updates one :class:`_Cleaning`.
RULES = (
    _rule_columns,
    _rule_ticker,
    _rule_dates,
    _rule_values,
    _rule_bar_range,
    _rule_duplicates,
    _rule_order,
    _rule_min_rows,
    _rule_stale_opens,
    _rule_adjustment,
)


def _assemble(c: _Cleaning, rows_in: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The ``primary_prices`` frame, its calendar gaps, and the report in its documented order."""
    index = pd.DatetimeIndex(c.frame["date"].to_numpy(), name="date").as_unit("ns")
    prices = pd.DataFrame({n: c.frame[n].to_numpy(dtype="float64") for n in OUTPUT_COLUMNS}, index=index)
    r = c.report
    report = {
        "source": c.source,
        "ticker": r["ticker"],
        "columns_found": r["columns_found"],
        "date_format": r["date_format"],
        "rows_in": rows_in,
        "rows_selected": r["rows_selected"],
        "rows_out": r["rows_out"],
        "date_start": index[0].isoformat(),
        "date_end": index[-1].isoformat(),
        "was_sorted": r["was_sorted"],
        "gaps": _gaps(index, float(c.settings.gap_factor)),
        "adjustments": r["adjustments"],
        "rows_dropped": r["rows_dropped"],
        "zero_volume_rows": int((prices["Volume"] == 0).sum()),
        "stale_open": r["stale_open"],
        "min_rows": c.settings.min_rows,
        "warnings": c.warnings,
    }
    return prices, report


# --------------------------------------------------------------------------- main entry
def normalise_prices(
    raw: pd.DataFrame,
    *,
    source: str,
    settings: IngestionParams | Mapping[str, Any] | None = None,
    warn_stale_opens_from: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validate, clean and adjust a raw price table by applying :data:`RULES` in order.

    Args:
        raw: the table as loaded (strings from a CSV, typed columns from Parquet).
        source: what to call the input in messages and the report (usually its path).
        settings: :class:`~.params.data.IngestionParams` or the ``data_ingestion`` parameter dict.
        warn_stale_opens_from: warn only about stale-open years from this date on (a paper-trading
            feed cares about the bars it trades); the report covers all years.

    Returns:
        ``(prices, report)``: the ``primary_prices`` frame and the quality report dict.

    Raises:
        DataValidationError: on any rule violation; the message names the source, column,
        the first offending rows and how to fix them.
    """
    settings = IngestionParams.parse(settings)
    if not isinstance(raw, pd.DataFrame):
        raise DataValidationError(f"{source}: expected a table, got {type(raw).__name__}.")
    if len(raw) == 0 or raw.shape[1] == 0:
        _fail(
            source,
            None,
            "the file is empty",
            f"{len(raw)} data rows, columns {[str(col) for col in raw.columns]}",
            "Provide a price file with a header line and at least one row.",
        )
    cleaning = _Cleaning(raw, source, settings, warn_stale_opens_from)
    for rule in RULES:
        rule(cleaning)
    return _assemble(cleaning, rows_in=len(raw))
