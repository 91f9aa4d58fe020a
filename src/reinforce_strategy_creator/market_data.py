"""Turn a raw price file into a clean, adjusted, validated OHLCV table.

What: :func:`normalise_prices` takes a raw table as read from a CSV or Parquet file (or a
download) and returns the ``primary_prices`` frame of ``docs/contracts.md`` — a tz-naive,
sorted, unique ``DatetimeIndex`` named ``date`` and float64 ``Open, High, Low, Close,
Volume`` — together with a JSON-able data quality report.

Why hand-written: no maintained library validates OHLCV files with errors that name the
file, column and offending rows, and pandas' own date inference silently guesses formats.
So the raw file is read as strings (:func:`read_raw_csv`, or the catalog with
``dtype: str``) and every conversion happens here, where a failure can say exactly which
rows are wrong and what to do. Each failure is a :class:`DataValidationError`
(a ``ValueError``). Nothing is ever replaced by other or synthetic data.

Rules, in the order they are applied:

1. column names are matched case-insensitively, ignoring spaces, ``_`` and ``-``
   (``Adj Close``, ``adj_close``, ``adjclose``); the date comes from ``Date``,
   ``Datetime``, ``Time``, ``Timestamp``, an unnamed first column or a non-default index;
2. a long file (``Ticker``/``Symbol`` column) is reduced to the requested ticker;
3. dates are parsed from ``m/d/Y``, ISO dates or ISO date-times (time zones are converted
   to UTC and then dropped), or from an explicit ``date_format``;
4. prices must be present, numeric and positive; volume present, numeric, not negative;
   ``High >= max(Open, Close)`` and ``Low <= min(Open, Close)``;
5. identical duplicate rows are dropped (with a warning), conflicting ones rejected;
   unsorted rows are sorted (with a warning);
6. where ``Adj Close`` differs from ``Close`` all four prices are scaled by
   ``Adj Close / Close`` and volume by its inverse (split and dividend adjustment);
7. calendar gaps (spacing above ``gap_factor`` x the median spacing) are reported only;
8. stale opens (an ``Open`` that is a copy of the previous bar's ``Close``) are counted per
   calendar year; years above ``stale_open_threshold`` are named in one warning
   (:func:`stale_open_report`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .params.data import IngestionParams

__all__ = [
    "DataValidationError",
    "IngestionParams",
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


def read_raw_csv(path: str | Path) -> pd.DataFrame:
    """Read a price CSV as raw strings (no type or date inference), as the catalog does."""
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found. Check the path you gave.")
    if path.stat().st_size == 0 or not path.read_text(errors="replace").strip():
        raise DataValidationError(
            f"{path}: the file is empty. Provide a CSV with a header line "
            "(Date, Open, High, Low, Close, Volume) and at least one row."
        )
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


def _map_columns(raw: pd.DataFrame, source: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rename recognised columns to canonical names; find the date column."""
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
            _fail(source, canonical, "ambiguous column", f"{[str(c) for c in matches]} all match", "Keep only one.")
        if matches:
            found[canonical] = str(matches[0])
    missing = [c for c in ("date", *OUTPUT_COLUMNS) if c not in found]
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


def _select_ticker(frame: pd.DataFrame, source: str, ticker: str | None) -> tuple[pd.DataFrame, str | None]:
    if "Ticker" not in frame.columns:
        if ticker is not None:
            _fail(
                source,
                None,
                f"parameter data_ingestion.ticker={ticker!r} was given but the file has no Ticker/Symbol column",
                "it holds a single series",
                "Set data_ingestion.ticker to null for a single-series file, or point at a long file.",
            )
        return frame, None
    symbols = frame["Ticker"].astype("string").str.strip()
    available = sorted(symbols.dropna().unique().tolist())
    if ticker is None:
        _fail(
            source,
            "Ticker",
            "the file holds several tickers and parameter data_ingestion.ticker is not set",
            f"available tickers: {available}",
            "Choose one, e.g. --params data_ingestion.ticker=" + (available[0] if available else "XYZ"),
        )
    wanted = ticker.strip().upper()
    mask = symbols.str.upper() == wanted
    if not mask.any():
        _fail(
            source,
            "Ticker",
            f"ticker {ticker!r} (parameter data_ingestion.ticker) not in the file",
            f"available tickers: {available}",
            "Set data_ingestion.ticker to one of them.",
        )
    return frame.loc[mask.to_numpy()].drop(columns="Ticker"), wanted


def _parse_dates(frame: pd.DataFrame, source: str, column: str, date_format: str | None) -> tuple[pd.Series, str]:
    """Parse the date column. Returns tz-naive timestamps and a note on the format used."""
    values = frame["date"]
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None), "datetime (tz-aware, converted to UTC, tz dropped)"
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
        tried = f"format {date_format!r} (parameter data_ingestion.date_format)" if date_format else (
            "m/d/Y, ISO dates and ISO date-times"
        )
        _fail(
            source,
            column,
            "unparseable dates",
            _rows(frame, best_bad) + f" (tried {tried})",
            "Fix those rows, or set data_ingestion.date_format to the file's strftime format.",
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
        _fail(source, original, what, _rows(frame, bad, column), "Prices must be > 0 and volume >= 0; fix those rows.")
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
        longest = {"start": index[i].isoformat(), "end": index[i + 1].isoformat(), "spacing": str(spacing.iloc[i])}
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
    years = ", ".join(f"{y} ({stale['by_year'][str(y)]['fraction']:.1%})" for y in stale["years_above_threshold"])
    return (
        f"{source}: stale opens: in {len(stale['years_above_threshold'])} calendar year(s) more than "
        f"{stale['threshold']:.1%} of the bars have an Open equal to the previous bar's Close "
        f"({parameter}={stale['threshold']:g}): {years}; {stale['overall_fraction']:.1%} of all bars. "
        "On those bars the Open is a copy of a close the agent has already seen, so a fill 'at the next "
        "open' is not a real next-open fill and backtests filled there are optimistic. Fill at the next "
        "close instead (environment.fill_price: next_close) or use a file with real opens "
        "(see docs/data.md, 'Stale opens')."
    )


# --------------------------------------------------------------------------- main entry
def normalise_prices(
    raw: pd.DataFrame,
    *,
    source: str,
    settings: IngestionParams | Mapping[str, Any] | None = None,
    warn_stale_opens_from: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validate, clean and adjust a raw price table.

    ``warn_stale_opens_from``: warn only about stale-open years from this date on (a paper-trading
    feed cares about the bars it trades, not the history before them); the report covers all.

    Args:
        raw: the table as loaded (strings from a CSV, typed columns from Parquet).
        source: what to call the input in messages and the report (usually its path).
        settings: :class:`~.params.data.IngestionParams` or the ``data_ingestion`` parameter dict.

    Returns:
        ``(prices, report)``: the ``primary_prices`` frame and the quality report dict.

    Raises:
        DataValidationError: on any rule violation; the message names the source, column,
        the first offending rows and how to fix them.
    """
    settings = IngestionParams.parse(settings)
    if not isinstance(raw, pd.DataFrame):
        raise DataValidationError(f"{source}: expected a table, got {type(raw).__name__}.")
    warnings: list[str] = []
    rows_in = len(raw)
    if rows_in == 0 or raw.shape[1] == 0:
        _fail(
            source,
            None,
            "the file is empty",
            f"{rows_in} data rows, columns {[str(c) for c in raw.columns]}",
            "Provide a price file with a header line and at least one row.",
        )

    frame, found = _map_columns(raw, source)
    frame = frame.reset_index(drop=True)
    frame.insert(0, "_row", np.arange(len(frame)))
    frame, ticker = _select_ticker(frame, source, settings.ticker)
    rows_selected = len(frame)

    frame = frame.copy()
    frame["_date_raw"] = frame["date"].astype("string")
    frame["date"], date_note = _parse_dates(frame, source, found["date"], settings.date_format)

    values = {c: _numeric(frame, source, c, found[c], positive=True) for c in PRICE_COLUMNS}
    values["Volume"] = _numeric(frame, source, "Volume", found["Volume"], positive=False)
    has_adj = "Adj Close" in found
    if has_adj:
        values["Adj Close"] = _numeric(frame, source, "Adj Close", found["Adj Close"], positive=True)
    for name, series in values.items():
        frame[name] = series

    oc_max = np.maximum(frame["Open"], frame["Close"])
    oc_min = np.minimum(frame["Open"], frame["Close"])
    high_bad = frame["High"] < oc_max
    if high_bad.any():
        _fail(source, found["High"], "High below max(Open, Close)", _rows(frame, high_bad, "High"), "Fix those rows.")
    low_bad = frame["Low"] > oc_min
    if low_bad.any():
        _fail(source, found["Low"], "Low above min(Open, Close)", _rows(frame, low_bad, "Low"), "Fix those rows.")

    dropped: list[dict[str, Any]] = []
    value_cols = ["date", *OUTPUT_COLUMNS] + (["Adj Close"] if has_adj else [])
    identical = frame.duplicated(subset=value_cols, keep="first")
    clash = frame.loc[~identical, "date"].duplicated(keep=False)
    if clash.any():
        _fail(
            source,
            found["date"],
            "conflicting duplicate timestamps (same date, different values)",
            _rows(frame.loc[~identical], clash),
            "Keep exactly one row per timestamp.",
        )
    if identical.any():
        msg = f"{source}: dropped {int(identical.sum())} identical duplicate rows ({_rows(frame, identical)})"
        logger.warning(msg)
        warnings.append(msg)
        dropped.append(
            {
                "reason": "identical duplicate row",
                "count": int(identical.sum()),
                "dates": [d.isoformat() for d in frame.loc[identical, "date"].head(MAX_GAPS_LISTED)],
            }
        )
        frame = frame.loc[~identical.to_numpy()]

    was_sorted = bool(frame["date"].is_monotonic_increasing)
    if not was_sorted:
        out_of_order = frame["date"] < frame["date"].cummax()
        msg = (
            f"{source}, column {found['date']!r}: timestamps are not in increasing order "
            f"(first out-of-order: {_rows(frame, out_of_order)}); rows were sorted by date"
        )
        logger.warning(msg)
        warnings.append(msg)
        frame = frame.sort_values("date", kind="stable")

    rows_out = len(frame)
    if rows_out < settings.min_rows:
        _fail(
            source,
            None,
            "too few rows",
            f"{rows_out} usable rows"
            + (f" for ticker {ticker}" if ticker else "")
            + f", parameter data_ingestion.min_rows={settings.min_rows}",
            "Provide a longer history or lower data_ingestion.min_rows.",
        )

    # Stale opens on the ingested rows (ticker, de-duplicated, sorted), in the file's own prices:
    # equal to comparing the adjusted Open with the previous Close in the bar's own adjustment
    # basis, so an ex-dividend or split day between the two bars cannot hide a copied open.
    stale = stale_open_report(
        pd.DatetimeIndex(frame["date"]),
        stale_open_flags(frame["Open"].to_numpy(), frame["Close"].to_numpy()),
        float(settings.stale_open_threshold),
    )
    warn_years = [y for y in stale["years_above_threshold"]
                  if warn_stale_opens_from is None or int(y) >= pd.Timestamp(warn_stale_opens_from).year]
    if warn_years:
        msg = _stale_open_warning(source, {**stale, "years_above_threshold": warn_years},
                                  f"{settings.prefix}.stale_open_threshold")
        logger.warning(msg)
        warnings.append(msg)

    adjustment: dict[str, Any] = {"applied": False, "method": None, "rows_adjusted": 0}
    if has_adj:
        factor = (frame["Adj Close"] / frame["Close"]).to_numpy()
        differs = ~np.isclose(factor, 1.0, rtol=1e-9, atol=0.0)
        adjustment.update(
            {
                "adj_close_column": found["Adj Close"],
                "rows_differing": int(differs.sum()),
                "factor_min": float(factor.min()),
                "factor_max": float(factor.max()),
            }
        )
        if settings.adjust and differs.any():
            for c in PRICE_COLUMNS:
                frame[c] = frame[c].to_numpy() * factor
            frame["Volume"] = frame["Volume"].to_numpy() / factor
            adjustment.update(
                {
                    "applied": True,
                    "method": "Open/High/Low/Close x (Adj Close / Close); Volume / (Adj Close / Close)",
                    "rows_adjusted": int(differs.sum()),
                }
            )
        elif differs.any():
            msg = (
                f"{source}: Adj Close differs from Close on {int(differs.sum())} rows but "
                "data_ingestion.adjust is false; prices are NOT split/dividend adjusted"
            )
            logger.warning(msg)
            warnings.append(msg)
    else:
        adjustment["note"] = "no Adj Close column; prices used as given"

    index = pd.DatetimeIndex(frame["date"].to_numpy(), name="date").as_unit("ns")
    prices = pd.DataFrame(
        {c: frame[c].to_numpy(dtype="float64") for c in OUTPUT_COLUMNS}, index=index
    )
    gaps = _gaps(index, float(settings.gap_factor))
    zero_volume = int((prices["Volume"] == 0).sum())
    report = {
        "source": source,
        "ticker": ticker,
        "columns_found": found,
        "date_format": date_note,
        "rows_in": rows_in,
        "rows_selected": rows_selected,
        "rows_out": rows_out,
        "date_start": index[0].isoformat(),
        "date_end": index[-1].isoformat(),
        "was_sorted": was_sorted,
        "gaps": gaps,
        "adjustments": adjustment,
        "rows_dropped": dropped,
        "zero_volume_rows": zero_volume,
        "stale_open": stale,
        "min_rows": settings.min_rows,
        "warnings": warnings,
    }
    return prices, report
