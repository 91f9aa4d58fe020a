"""Pure node functions for ``data_ingestion``; the logic lives in ``market_data``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from reinforce_strategy_creator.market_data import IngestionSettings, normalise_prices


def ingest_prices(raw_prices: pd.DataFrame, params: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validate, clean and split/dividend-adjust the raw table.

    The source named in errors and in the report is the one the dataset recorded
    (``attrs["source"]``, set by ``YFinanceDataset``) or else ``data_ingestion.filepath``,
    which the catalog's ``filepath`` follows through ``runtime_params``.
    """
    settings = IngestionSettings(params)
    source = raw_prices.attrs.get("source") if isinstance(raw_prices, pd.DataFrame) else None
    source = source or settings.filepath or "raw_prices"
    return normalise_prices(raw_prices, source=str(source), settings=settings)
