"""Adding an agent is adding a parameter block: a copy of the project with a second PPO
block (other hyperparameters) runs ``full_cycle --env quick``, and the new agent is trained,
stored by the catalog's dataset factories, replayed by evaluation and ranked with the others.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from reinforce_strategy_creator.artifacts import load_policy_bundle, read_digest_record
from tests.support.project import PROJECT_ROOT

pytestmark = pytest.mark.slow

KEDRO = Path(sys.executable).with_name("kedro")
NEW_AGENT = "ppo_wide"
BLOCK = {"algorithm": "ppo", "hidden_sizes": [32], "learning_rate": 0.001, "num_steps": 32}


def _copy_project(root: Path) -> None:
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    for env in ("base", "quick"):
        shutil.copytree(PROJECT_ROOT / "conf" / env, root / "conf" / env)
    shutil.copy(PROJECT_ROOT / "conf" / "logging.yml", root / "conf" / "logging.yml")
    (root / "conf" / "local").mkdir()
    shutil.copytree(
        PROJECT_ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    shutil.copytree(PROJECT_ROOT / "data" / "01_raw", root / "data" / "01_raw")


def test_a_new_parameter_block_is_a_new_agent_end_to_end(tmp_path):
    root = tmp_path / "project"
    _copy_project(root)
    params_file = root / "conf/base/parameters_training.yml"
    params = yaml.safe_load(params_file.read_text())
    params["training"][NEW_AGENT] = BLOCK  # the only change: one block in one file
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))

    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "COLUMNS": "200"}
    result = subprocess.run(
        [
            str(KEDRO),
            "run",
            "--pipelines",
            "full_cycle",
            "--env",
            "quick",
            "--params",
            "evaluation.scheme=single_split",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    versions = list((root / f"data/06_models/{NEW_AGENT}_policy").glob("*/"))
    assert len(versions) == 1, "the dataset factory training.{agent}.policy stored one versioned artifact"
    artifact = versions[0] / f"{NEW_AGENT}_policy"
    bundle = load_policy_bundle(
        artifact, expected_sha256=read_digest_record(artifact), recorded_in="its digest record"
    )
    assert bundle.spec["algorithm"] == "ppo" and bundle.spec["network"]["hidden_sizes"] == [32]
    history = pd.read_parquet(root / f"data/07_model_output/{NEW_AGENT}_training_history.parquet")
    assert sorted(history["seed"].unique()) == [0, 1]  # quick's common seeds
    assert (root / f"data/08_reporting/{NEW_AGENT}_learning_curve.png").stat().st_size > 0

    metrics = pd.read_csv(root / "data/08_reporting/evaluation_test_metrics.csv")
    agents = metrics.loc[metrics["kind"] == "agent"].groupby("agent")["seed"].apply(sorted).to_dict()
    assert agents == {name: [0, 1] for name in ("ppo", "a2c", "dqn", NEW_AGENT)}
    ranking = pd.read_csv(root / "data/08_reporting/evaluation_ranking.csv")
    assert set(ranking["agent"]) == {"ppo", "a2c", "dqn", NEW_AGENT}
