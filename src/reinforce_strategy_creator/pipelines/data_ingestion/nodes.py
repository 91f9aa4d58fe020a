"""Pure node functions for ``data_ingestion``; the logic lives in ``universe`` and ``market_data``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from reinforce_strategy_creator.market_data import IngestionParams
from reinforce_strategy_creator.paths import display_path, project_root
from reinforce_strategy_creator.universe import Universe, ingest


def source_name(source: str) -> str:
    """How the report and messages name the input: a local file or folder relative to the project
    root (the working directory's project, where Kedro runs) when it lies inside the project,
    else absolute; anything that is not an existing local path (a URL, a yfinance description)
    unchanged. Reports stay true when the project folder moves."""
    try:
        exists = Path(source).exists()
    except (OSError, ValueError):  # not a usable path (too long, NUL byte, ...)
        exists = False
    return display_path(source, root=project_root()) if exists else source


def ingest_prices(raw_prices: pd.DataFrame, params: dict[str, Any]) -> tuple[Universe, dict[str, Any]]:
    """One instrument or a universe as one validated panel, and its data quality report.

    The source named in errors and in the report is the one the dataset recorded
    (``attrs["source"]``, set by ``SourcedCSVDataset`` / ``YFinanceDataset``) or else
    ``data_ingestion.filepath``, which the catalog's ``filepath`` follows through
    ``runtime_params``; a local file is named relative to the project root (``source_name``).
    """
    settings = IngestionParams.parse(params)
    source = raw_prices.attrs.get("source") if isinstance(raw_prices, pd.DataFrame) else None
    source = source or settings.filepath or "raw_prices"
    universe = ingest(raw_prices, source=source_name(str(source)), settings=settings)
    return universe, universe.report


def one_instrument(universe: Universe) -> pd.DataFrame:
    """``primary_prices``: the universe-of-one's OHLCV bars (an error naming the tickers when the
    universe holds several: they are the portfolio stage's)."""
    return universe.instrument()
