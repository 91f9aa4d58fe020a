"""``YFinanceDataset``: daily (or intraday) bars from Yahoo Finance, cached on disk.

A read-only Kedro dataset over :class:`~..yfinance_source.YFinanceSource` (one ticker downloaded
with the optional ``yfinance`` extra, cached as a CSV under ``data/01_raw/``; a failed or empty
download raises :class:`DataSourceError` and never falls back to other or older data).

Why custom: kedro-datasets has no market-data source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from ..yfinance_source import DataSourceError, DownloadFn, YFinanceSource, _yfinance_download

__all__ = ["DataSourceError", "YFinanceDataset", "_yfinance_download"]


class YFinanceDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """Download ``ticker`` bars between ``start`` and ``end`` (exclusive), cached as CSV.

    Example catalog entry (``conf/local/catalog.yml``)::

        data_ingestion.raw_prices:
          type: reinforce_strategy_creator.datasets.YFinanceDataset
          ticker: AAPL
          start: "2010-01-01"
          end: "2020-01-01"
          interval: 1d
    """

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
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._source = YFinanceSource(
            ticker=ticker,
            start=start,
            end=end,
            interval=interval,
            cache_dir=cache_dir,
            refresh=refresh,
            download_fn=download_fn,
        )
        self.metadata = metadata

    @property
    def cache_path(self) -> Path:
        return self._source.cache_path

    def _describe(self) -> dict[str, Any]:
        return self._source.describe()

    def load(self) -> pd.DataFrame:
        return self._source.load()

    def save(self, data: pd.DataFrame) -> None:
        raise DatasetError("YFinanceDataset is read-only: it downloads, it does not save.")
