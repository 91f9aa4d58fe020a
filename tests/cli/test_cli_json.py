"""The real ``kedro`` CLI in a subprocess, from a throw-away copy of the project.

``--json`` output must be one valid JSON document on stdout with every log line on stderr
(``kedro models list --json | jq .``), and the paths it shows are relative to the project
root, so they stay true when the project folder moves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reinforce_strategy_creator.cli import load_deployment_params
from reinforce_strategy_creator.deployment import (
    AccountStore,
    ModelRegistry,
    PaperAccount,
)
from reinforce_strategy_creator.paths import resolve_in_project
from tests.support.artifacts import save_version
from tests.support.paper import alternating_policy, make_prices
from tests.support.project import PROJECT_ROOT

KEDRO = Path(sys.executable).with_name("kedro")


def _kedro(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "COLUMNS": "200"}
    env.pop("KEDRO_LOGGING_CONFIG", None)
    result = subprocess.run(
        [str(KEDRO), *args], cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


@pytest.mark.slow  # end to end: the real kedro CLI in subprocesses
def test_json_is_valid_on_stdout_logs_on_stderr_and_paths_survive_a_move(tmp_project, monkeypatch):
    shutil.copy(PROJECT_ROOT / "conf" / "logging.yml", tmp_project / "conf" / "logging.yml")
    params = load_deployment_params()
    reg = ModelRegistry(params.registry_path)
    # an older registry may hold an absolute artifact path inside the project
    old = reg.register(
        agent="ppo",
        version="v1",
        seed=0,
        metrics={"validation_sharpe": 1.0},
        verdict={"passed": True},
        artifact_path=str(tmp_project / "data/06_models/ppo_policy"),
        artifact_sha256=save_version(tmp_project / "data/06_models/ppo_policy", "v1"),
    )
    reg.register(
        agent="dqn",
        version="v2",
        seed=0,
        metrics={"validation_sharpe": 0.1},
        verdict={"passed": False},
        artifact_path="data/06_models/dqn_policy",
        artifact_sha256=save_version(tmp_project / "data/06_models/dqn_policy", "v2"),
    )
    reg.promote(old)
    for folder in (params.account_dir, params.shadow_account_dir):
        PaperAccount.instrument(
            AccountStore(folder),
            initial_capital=params.initial_capital,
            costs=params.costs,
            limits=params.risk,
        ).run(make_prices(40), alternating_policy, model_id=old)

    listing = _kedro(tmp_project, "models", "list", "--json")
    assert "Using 'conf/logging.yml'" in listing.stderr  # Kedro's log line: stderr, not stdout
    models = json.loads(listing.stdout)
    assert [m["entry_id"] for m in models] == [old, "dqn-v2-seed0"]
    assert [m["artifact_path"] for m in models] == ["data/06_models/ppo_policy", "data/06_models/dqn_policy"]

    expected = {
        role: AccountStore(folder).load()
        for role, folder in (("production", params.account_dir), ("shadow", params.shadow_account_dir))
    }
    moved = tmp_project.parent / "moved_elsewhere"
    tmp_project.rename(moved)  # the project folder moves; nothing it shows may become false
    monkeypatch.chdir(moved)
    status = json.loads(_kedro(moved, "paper", "status", "--json").stdout)
    assert status["registry"] == "data/07_model_output/registry.jsonl"
    assert status["production"]["account"] == "data/07_model_output/paper_account"
    assert status["shadow"]["account"] == "data/07_model_output/shadow_account"
    assert resolve_in_project(status["registry"], anchor=moved).is_file()
    for role, state in expected.items():
        facts = status[role]
        assert (resolve_in_project(facts["account"], anchor=moved) / "state.json").is_file()
        assert facts["exists"] and facts["reconciled"] and facts["model"] == old
        assert (facts["equity"], facts["cash"], facts["shares"], facts["last_bar"]) == (
            state.equity,
            state.cash,
            {t: x for t, x in state.holdings().items() if x},
            state.last_bar,
        )
