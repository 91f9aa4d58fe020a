"""Session-wide fixtures. Helpers and constants live in ``tests/support`` (plain modules)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.features import PARAMS_FILE, load_sp500
from tests.support.project import BAD_RAW_FILES, PROJECT_ROOT

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def sp500_prices() -> pd.DataFrame:
    """The embedded S&P 500 file as OHLCV float64 bars (tests/features, tests/pipelines/feature_engineering)."""
    return load_sp500()


@pytest.fixture(scope="session")
def _stage_params() -> dict:
    return yaml.safe_load(PARAMS_FILE.read_text())["feature_engineering"]


@pytest.fixture
def stage_params(_stage_params) -> dict:
    """A fresh copy of conf/base's ``feature_engineering`` block, free to mutate."""
    return copy.deepcopy(_stage_params)


@pytest.fixture
def fixture_path():
    """``fixture_path(name)``: a malformed raw file under tests/market_data/fixtures/."""
    def _get(name: str) -> Path:
        path = BAD_RAW_FILES / name
        assert path.is_file(), f"missing fixture {path}"
        return path

    return _get
