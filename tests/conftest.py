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


def catalog_config(*names: str) -> dict:
    """The project's catalog entries (conf/base, globals resolved) named ``names`` (all when none),
    as plain dicts a test can relocate into a tmp folder."""
    import copy
    import warnings

    from kedro.config import OmegaConfigLoader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
        catalog = loader["catalog"]
    return copy.deepcopy({k: v for k, v in catalog.items() if not names or k in names})
