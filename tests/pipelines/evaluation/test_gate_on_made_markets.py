"""The gate's statistical claims, on markets whose truth is known, through the real `kedro run`.

A null market (real S&P 500 days resampled i.i.d. over the default calendar: nothing to learn)
must FAIL the gate; a market with planted one-day momentum must PASS it, under the same small
budgets (`--env quick`). Both train every agent and seed, select on validation and let the gate
decide on the champion's single test replay, like the default run. The planted markets have real
opens, so they fill at the next open (`environment.fill_price=next_open`) as their rule does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv
from reinforce_strategy_creator.markets import null_market, planted_momentum_market, to_csv_frame
from tests.support.project import PROJECT_ROOT, SP500_CSV

pytestmark = pytest.mark.slow

KEDRO = Path(sys.executable).with_name("kedro")
STAGES = "data_ingestion,feature_engineering,training,evaluation"


def _project(tmp_path: Path, market) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    for env in ("base", "quick"):
        shutil.copytree(PROJECT_ROOT / "conf" / env, root / "conf" / env)
    shutil.copy(PROJECT_ROOT / "conf" / "logging.yml", root / "conf" / "logging.yml")
    (root / "conf" / "local").mkdir()
    shutil.copytree(
        PROJECT_ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    (root / "data" / "01_raw").mkdir(parents=True)
    to_csv_frame(market.prices).to_csv(root / "data" / "01_raw" / "market.csv", index=False)
    return root


def _verdict(tmp_path: Path, market) -> dict:
    root = _project(tmp_path, market)
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    params = "data_ingestion.filepath=data/01_raw/market.csv,environment.fill_price=next_open"
    run = subprocess.run(
        [str(KEDRO), "run", "--env", "quick", "--pipelines", STAGES, "--params", params],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads((root / "data" / "08_reporting" / "evaluation_verdict.json").read_text())


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def sp500():
    prices, _ = normalise_prices(read_raw_csv(SP500_CSV), source=str(SP500_CSV))
    return prices


def test_a_null_market_fails_the_gate(tmp_path, sp500):
    verdict = _verdict(tmp_path, null_market(sp500, seed=1))
    print("\nNULL MARKET VERDICT", {k: r["value"] for k, r in verdict["rules"].items()})
    assert verdict["decided_on"]["split"] == "test" and verdict["selection"]["n_trials"] > 0
    assert verdict["passed"] is False


def test_a_planted_momentum_market_passes_the_gate(tmp_path, sp500):
    verdict = _verdict(tmp_path, planted_momentum_market(sp500, seed=1, strength=0.5))
    print("\nPLANTED MARKET VERDICT", {k: r["value"] for k, r in verdict["rules"].items()})
    assert verdict["decided_on"]["split"] == "test"
    assert verdict["passed"] is True, verdict["rules"]
    assert verdict["rules"]["beats_buy_and_hold"]["passed"] and verdict["rules"]["min_psr"]["value"] >= 0.95
