"""Session-wide fixtures. Helpers and constants live in ``tests/support`` (plain modules).

The suite runs on pytest-xdist workers (``-n auto --dist loadfile``, pyproject.toml): a worker
takes a whole test file at a time, files in the order set here (files with slow tests first,
so the long ones run side by side from the start and short files fill the gaps at the end).
What several files read and is expensive to make (the README's flow of ``quick_run``, the
quick portfolio cycle of ``portfolio_run``, one ``kedro viz build``) is made once per session
and shared by the workers (``once``).
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from reinforce_strategy_creator.atomic_io import exclusive_lock
from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv
from tests.support.features import PARAMS_FILE, load_sp500
from tests.support.project import BAD_RAW_FILES, PROJECT_ROOT, SP500_CSV
from tests.support.quick_run import build_portfolio_run, build_quick_run

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
torch.set_num_threads(1)  # one core per xdist worker; tests that train say so themselves too


SHARED_RUNS = ("quick_run", "portfolio_run")

#: Files of the integration tier (``slow``; ``make test`` runs them, ``make test-fast`` does not):
#: every Kedro pipeline run under tests/pipelines, the kedro-viz build, the files whose tests
#: train agents or replay whole markets, and the real dask clusters. ``make test-fast`` keeps the
#: unit tests and does not import these files (:func:`pytest_ignore_collect`).
INTEGRATION_FILES = (
    "tests/pipelines/",
    "tests/agents/test_cartpole_learning.py",
    "tests/agents/test_population.py",
    "tests/compute/test_dask.py",
    "tests/test_learning_power.py",
    "tests/portfolio/test_portfolio_agents.py",
    "tests/training/test_training.py",
    "tests/markets/test_suite.py",
    "tests/compute/test_executor.py",
    "tests/test_viz.py",
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m "not slow"`` (``make test-fast``) the integration files are not even imported:
    every test in them is slow, so none would be selected, and each xdist worker would pay for
    importing them."""
    if " ".join((config.getoption("markexpr") or "").split()) != "not slow":
        return None
    try:
        path = collection_path.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return None
    if collection_path.is_dir():
        path += "/"
    return True if path.startswith(INTEGRATION_FILES) else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the integration tier ``slow`` (:data:`INTEGRATION_FILES`), then orders: slow tests
    first (stable order otherwise). The first test that reads each shared run goes first of all,
    the others after the rest of the slow tests, so that workers make the runs while the others
    start the learning tests, and nobody waits for them."""
    for item in items:
        path = Path(str(item.fspath)).relative_to(PROJECT_ROOT).as_posix()
        if path.startswith(INTEGRATION_FILES) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)

    def shared(item: pytest.Item) -> bool:
        return any(run in getattr(item, "fixturenames", ()) for run in SHARED_RUNS)

    firsts = {
        id(next(i for i in items if run in getattr(i, "fixturenames", ())))
        for run in SHARED_RUNS
        if any(run in getattr(i, "fixturenames", ()) for i in items)
    }

    def rank(item: pytest.Item) -> int:
        if id(item) in firsts:
            return 0
        if item.get_closest_marker("slow") is None:
            return 3
        return 2 if shared(item) else 1

    items.sort(key=rank)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def once(tmp_path_factory, worker_id) -> Callable[[str, Callable[[Path], object]], Path]:
    """``once(name, build)``: the folder ``build(folder)`` filled, built once per test session and
    shared by the xdist workers (the first that needs it builds it under a lock, the others wait
    for it and reuse it; a failed build is retried by the next test that needs it). What is built
    this way is only read by the tests."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # xdist: the workers' base temps share this session's parent folder
        shared = shared.parent

    def _once(name: str, build: Callable[[Path], object]) -> Path:
        folder, done = shared / name, shared / f"{name}.done"
        with exclusive_lock(shared / f"{name}.lock"):
            if not done.exists():
                shutil.rmtree(folder, ignore_errors=True)  # left half-built by a failed build
                build(folder)
                done.touch()
        return folder

    return _once


@pytest.fixture(scope="session")
def quick_run(once) -> Path:
    """A throw-away copy of the project after the README's flow with quick budgets (the full
    cycle, the champion promoted, the paper bars traded: tests/support/quick_run.py), made once
    per session. Its readers: tests/test_notebooks.py, tests/pipelines/full_cycle/test_kedro_run.py."""
    return once("quick_run", lambda folder: build_quick_run(folder / "project")) / "project"


@pytest.fixture(scope="session")
def portfolio_run(once) -> Path:
    """A throw-away copy of the project after the README's quick portfolio cycle, made once per
    session. Its readers: tests/test_notebooks.py (notebooks/05), tests/pipelines/portfolio."""
    return once("portfolio_run", lambda folder: build_portfolio_run(folder / "project")) / "project"


@pytest.fixture(scope="session")
def sp500_prices() -> pd.DataFrame:
    """The embedded S&P 500 file as OHLCV float64 bars (tests/features,
    tests/pipelines/feature_engineering)."""
    return load_sp500()


@pytest.fixture(scope="session")
def sp500() -> pd.DataFrame:
    """The embedded S&P 500 file through the project's own cleaning (``normalise_prices``): the real
    days every synthetic market is built from (tests/markets, tests/experiments, learning power)."""
    prices, _ = normalise_prices(read_raw_csv(SP500_CSV), source=str(SP500_CSV))
    return prices


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
