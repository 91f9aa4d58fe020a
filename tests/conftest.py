"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RAW_DIR = PROJECT_ROOT / "data" / "01_raw"
SP500_CSV = RAW_DIR / "sp500_daily_1999_2018.csv"
NASDAQ_CSV = RAW_DIR / "nasdaq_daily_1999_2018.csv"
STOCKS_CSV = RAW_DIR / "stocks_daily_2000_2013.csv"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT
