"""End to end: the user's real ``kedro run`` commands in a throw-away copy of the project.

Only the data_ingestion artifacts and the exit code are checked: other stages join
``full_cycle`` over time and own their own checks.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.support.project import BAD_RAW_FILES, NASDAQ_CSV, SP500_CSV, copy_project
from tests.support.project import kedro as run_kedro

pytestmark = pytest.mark.slow

PRIMARY = Path("data/03_primary/primary_prices.parquet")
REPORT = Path("data/08_reporting/data_quality_report.json")
BAD_FIXTURE = BAD_RAW_FILES / "low_above_min.csv"


@pytest.fixture
def project(tmp_path) -> Path:
    return copy_project(tmp_path / "project")


def kedro(root: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return run_kedro(root, "run", *args, timeout=timeout)


def test_full_cycle(quick_run):
    """``kedro run --pipelines full_cycle --env quick`` (the README's flow with tiny training
    budgets; the session's shared run, see tests/support/quick_run.py) exits 0 and writes the
    data_ingestion artifacts. The same command with the default budgets is ``make run``, which
    ``make e2e`` (CI) runs and checks artifact by artifact on a fresh clone."""
    prices = pd.read_parquet(quick_run / PRIMARY)
    assert prices.index.name == "date" and len(prices) == 5031
    assert list(prices.columns) == ["Open", "High", "Low", "Close", "Volume"]
    report = json.loads((quick_run / REPORT).read_text())
    # the report names the file actually read, relative to the project root (true after a move)
    assert report["source"] == "data/01_raw/sp500_daily_1999_2018.csv"
    assert report["rows_out"] == 5031
    assert report["stale_open"]["years_above_threshold"][:7] == list(range(1999, 2006))


def test_full_cycle_with_user_file(project):
    # --to-outputs keeps the second run to this stage: the point is the filepath override
    result = kedro(
        project,
        "--pipelines",
        "full_cycle",
        "--params",
        f"data_ingestion.filepath={NASDAQ_CSV}",
        "--to-outputs",
        "primary_prices,data_quality_report",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((project / REPORT).read_text())
    assert report["source"] == str(NASDAQ_CSV)  # outside the project copy: absolute
    assert report["stale_open"]["years_above_threshold"] == []  # NASDAQ has real opens
    nasdaq_close = pd.read_csv(NASDAQ_CSV)["Close"].to_numpy()
    assert pd.read_parquet(project / PRIMARY)["Close"].to_numpy().tolist() == nasdaq_close.tolist()


def test_bad_file_fails_cleanly(project):
    result = kedro(project, "--pipelines", "full_cycle", "--params", f"data_ingestion.filepath={BAD_FIXTURE}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "DataValidationError" in output and "low_above_min.csv" in output.replace("\n", "")
    assert "Traceback" not in output and "❱" not in output, "bad input must not print a traceback"
    assert not (project / PRIMARY).exists() and not (project / REPORT).exists()


def test_parquet_source_via_local_catalog(project):
    """The documented conf/local override for a Parquet file: the report names the file read."""
    frame = pd.read_csv(SP500_CSV)
    frame["Date"] = pd.to_datetime(frame["Date"], format="%m/%d/%Y")
    frame.set_index("Date").to_parquet(project / "data/01_raw/my_prices.parquet")
    (project / "conf/local/catalog.yml").write_text(
        "data_ingestion.raw_prices:\n"
        "  type: reinforce_strategy_creator.datasets.SourcedParquetDataset\n"
        "  filepath: data/01_raw/my_prices.parquet\n"
        "  metadata:\n    kedro-viz:\n      layer: raw\n"
    )
    result = kedro(project, "--pipelines", "data_ingestion")  # no --params: the catalog entry alone
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((project / REPORT).read_text())
    assert report["source"] == "data/01_raw/my_prices.parquet", report["source"]
    assert report["rows_out"] == 5031


def test_data_ingestion_warns_once_about_stale_opens(project):
    result = kedro(project, "--pipelines", "data_ingestion")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("stale opens:") == 1, output[-5000:]
    report = json.loads((project / REPORT).read_text())
    assert report["source"] == "data/01_raw/sp500_daily_1999_2018.csv"
    stale = report["stale_open"]
    assert stale["threshold"] == 0.05 and stale["years_above_threshold"][-1] == 2013
    assert sum("stale opens:" in w for w in report["warnings"]) == 1
