"""The light commands (``kedro --help``, ``kedro models list``, ``kedro paper status``) answer without
importing torch, matplotlib or the learning libraries: they only read YAML, JSON lines and the
account logs. (pandas and scipy are loaded by MLflow, which kedro-mlflow's command-line plugin
imports at every ``kedro`` start: docs/benchmarks.md, "Command-line start-up".)
Checked in a fresh interpreter (the project's Kedro CLI in a copy of the project, with a registry
and both paper accounts to read), by the modules it holds afterwards, not by timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from reinforce_strategy_creator.cli import load_deployment_params
from reinforce_strategy_creator.deployment import AccountStore, ModelRegistry, PaperAccount
from tests.support.paper import alternating_policy, make_prices
from tests.support.project import copy_project

HEAVY = ("torch", "matplotlib", "skfolio", "gymnasium", "sklearn", "sb3_contrib", "dask", "optuna")
COMMANDS = (
    ["--help"],
    ["models", "list"],
    ["models", "list", "--json"],
    ["paper", "status"],
    ["paper", "status", "--json"],
)
SCRIPT = """
import json, sys
from pathlib import Path
from click.testing import CliRunner
from kedro.framework.cli.cli import KedroCLI

cli = KedroCLI(Path.cwd())
results = {" ".join(args): CliRunner().invoke(cli, args) for args in json.loads(sys.argv[1])}
print(json.dumps({
    "exit_codes": {k: r.exit_code for k, r in results.items()},
    "outputs": {k: r.output for k, r in results.items()},
    "heavy": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules),
}))
"""


@pytest.fixture(scope="module")
def project_with_accounts(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("startup") / "project", raw=False)
    setup = load_deployment_params(project_path=root)
    for version, universe in (("v1", ["SPY"]), ("v2", [f"T{i:02d}" for i in range(20)])):
        entry = ModelRegistry(setup.registry_path).register(
            agent="ppo",
            version=version,
            seed=0,
            metrics={"validation_sharpe": 1.0, "test_sharpe": 0.5},
            verdict={"passed": True},
            scored_on={"split": "walk_forward", "start": "2010-01-04", "end": "2016-12-30"},
            universe=universe,
        )
    for folder in (setup.account_dir, setup.shadow_account_dir):
        PaperAccount.instrument(
            AccountStore(folder), initial_capital=setup.initial_capital, costs=setup.costs, limits=setup.risk
        ).run(make_prices(40), alternating_policy, model_id=entry)
    return root


def test_the_light_commands_import_no_heavy_library(project_with_accounts):
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(COMMANDS), json.dumps(HEAVY)],
        cwd=project_with_accounts,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.splitlines()[-1])
    assert set(seen["exit_codes"].values()) == {0}, seen["outputs"]
    assert "ppo-v1-seed0" in seen["outputs"]["models list"]  # the commands did their work
    assert json.loads(seen["outputs"]["paper status --json"])["production"]["reconciled"]
    assert seen["heavy"] == []
