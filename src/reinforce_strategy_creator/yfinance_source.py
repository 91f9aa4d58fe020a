"""Daily (or intraday) bars from Yahoo Finance, downloaded once and cached on disk as a CSV.

What: :class:`YFinanceSource` downloads one ticker with the optional ``yfinance`` extra
(``pip install -e ".[yfinance]"``) and caches the result as a CSV under ``data/01_raw/`` so
reruns are reproducible and offline. It returns the same kind of raw string table as the CSV
source, so :func:`market_data.normalise_prices` validates and adjusts it exactly like a file
(``auto_adjust=False`` keeps ``Adj Close``). The catalog's ``datasets.YFinanceDataset`` and
``universe.universe_from_yfinance`` both read through it.

Honesty rules: a failed or empty download raises :class:`DataSourceError`; it never falls back
to other or older data. The download function can be injected (``download_fn``) so tests run
without network.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic_io import atomic_write_text
from .errors import InputError

DownloadFn = Callable[..., pd.DataFrame]

_INSTALL_HINT = 'yfinance is not installed. Install the optional extra: pip install -e ".[yfinance]"'


class DataSourceError(InputError):
    """A remote source could not provide the requested data (no fallback is attempted)."""


def _yfinance_download(ticker: str, start: str, end: str | None, interval: str) -> pd.DataFrame:
    try:
        import yfinance as yf  # optional extra
    except ImportError as exc:
        raise DataSourceError(_INSTALL_HINT) from exc
    return yf.download(
        ticker,
        start=start,
        end=end,
        interval=interval,
        auto_adjust=False,
        actions=False,
        progress=False,
        threads=False,
        multi_level_index=False,
    )


def _flatten(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """yfinance may return (field, ticker) MultiIndex columns even for one ticker."""
    if isinstance(frame.columns, pd.MultiIndex):
        level = next(
            (i for i in range(frame.columns.nlevels) if ticker in frame.columns.get_level_values(i)), None
        )
        frame = frame.droplevel(level, axis=1) if level is not None else frame.droplevel(-1, axis=1)
    return frame


class YFinanceSource:
    """Download ``ticker`` bars between ``start`` and ``end`` (exclusive), cached as CSV."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        ticker: str,
        start: str,
        end: str | None = None,
        interval: str = "1d",
        cache_dir: str = "data/01_raw",
        refresh: bool = False,
        download_fn: DownloadFn | None = None,
    ) -> None:
        if not isinstance(ticker, str) or not ticker.strip():
            raise DataSourceError(
                f"YFinanceDataset: ticker={ticker!r} is invalid; give a symbol such as 'AAPL'."
            )
        for name, value in (("start", start), ("end", end)):
            if value is not None:
                try:
                    _dt.date.fromisoformat(str(value))
                except ValueError as exc:
                    raise DataSourceError(
                        f"YFinanceDataset({ticker}): {name}={value!r} is not an ISO date (YYYY-MM-DD)."
                    ) from exc
        self._ticker = ticker.strip().upper()
        self._start = str(start)
        self._end = None if end is None else str(end)
        self._interval = str(interval)
        self._cache_dir = Path(cache_dir)
        self._refresh = bool(refresh)
        self._download = download_fn or _yfinance_download

    @property
    def cache_path(self) -> Path:
        end = self._end or f"open-{_dt.date.today().isoformat()}"
        safe = re.sub(r"[^A-Za-z0-9.^=-]+", "_", self._ticker)
        return self._cache_dir / f"yfinance_{safe}_{self._start}_{end}_{self._interval}.csv"

    def describe(self) -> dict[str, Any]:
        return {
            "ticker": self._ticker,
            "start": self._start,
            "end": self._end,
            "interval": self._interval,
            "cache": str(self.cache_path),
        }

    def _source(self) -> str:
        return (
            f"yfinance {self._ticker} {self._start}..{self._end or 'today'} {self._interval} "
            f"(cache {self.cache_path})"
        )

    def _fetch(self) -> pd.DataFrame:
        end = self._end or "today"
        what = f"Yahoo Finance download of {self._ticker} {self._start}..{end} ({self._interval})"
        try:
            frame = self._download(self._ticker, self._start, self._end, self._interval)
        except DataSourceError:
            raise
        except Exception as exc:  # network, HTTP, parsing: all reported, none hidden
            raise DataSourceError(
                f"{what} failed: {type(exc).__name__}: {exc}. Check the network connection and the "
                "ticker; no other data is used in its place."
            ) from exc
        if frame is None or len(frame) == 0:
            raise DataSourceError(
                f"{what} returned no rows (no network, unknown ticker or empty date range). "
                "No other data is used in its place."
            )
        frame = _flatten(frame, self._ticker)
        frame.index.name = "Date"
        return frame

    def _write_cache(self, frame: pd.DataFrame) -> None:
        # atomic (temp file + fsync + rename): never a half-written cache
        atomic_write_text(self.cache_path, frame.to_csv(index=True, date_format="%Y-%m-%dT%H:%M:%S%z"))

    def load(self) -> pd.DataFrame:
        if self._refresh or not self.cache_path.is_file():
            self._write_cache(self._fetch())
        frame = pd.read_csv(self.cache_path, dtype=str, keep_default_na=False)
        frame.attrs["source"] = self._source()
        frame.attrs["ticker"] = self._ticker
        return frame
