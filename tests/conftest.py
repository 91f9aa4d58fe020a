"""Session-wide fixtures. Helpers and constants live in ``tests/support`` (plain modules).

The suite runs on pytest-xdist workers (``-n auto --dist loadgroup``, pyproject.toml). Tests that
read the artifacts of the one shared ``kedro run --env quick`` carry
``@pytest.mark.xdist_group("quick_run")`` so that they land on the same worker and the run is
made once. ``slow`` tests are scheduled first, so that the long ones start while the short ones
fill the gaps at the end.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.support.features import PARAMS_FILE, load_sp500
from tests.support.project import BAD_RAW_FILES, PROJECT_ROOT, copy_project, kedro

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
torch.set_num_threads(1)  # one core per xdist worker; tests that train say so themselves too


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (stable order otherwise): with two workers, the long tests run side by side
    from the start instead of one of them starting last while the other worker idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory) -> Path:
    """A throw-away copy of the project (conf base + quick, raw data, notebooks) after the CI run
    ``kedro run --env quick`` (the whole ``full_cycle`` with tiny training budgets), made once per
    worker; tests that use it must be in ``xdist_group("quick_run")`` and must only read what the
    run wrote, or add to it as the README does (tests/test_notebooks.py promotes and trades)."""
    root = copy_project(tmp_path_factory.mktemp("quick_run") / "project", envs=("base", "quick"),
                        notebooks=True)
    result = kedro(root, "run", "--env", "quick")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root


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
