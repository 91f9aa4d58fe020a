"""Tracked ``kedro run``s as the user makes them: the README's flow (``quick_run``) records one
run per command, with every parameter block, the verdict, the stitched metrics, the folds as
nested runs and the reports as artifacts, and its registry mirror agrees with ``kedro models
list``; an unreachable tracking server stops a run before any node; tracking off opens no store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.config import OmegaConfigLoader

from reinforce_strategy_creator.tracking import mirror
from reinforce_strategy_creator.tracking.record import flat_params
from tests.support.postgres import free_port
from tests.support.project import copy_project, kedro
from tests.support.tracking import EXPERIMENT, client, run_tree, tracked_runs


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_the_readmes_flow_records_each_run_with_its_folds_parameters_metrics_and_artifacts(quick_run):
    root = quick_run
    runs = tracked_runs(root)
    assert [r.info.run_name for r in runs] == ["full_cycle", "deployment"]  # one per `kedro run`
    cycle = runs[0]
    assert cycle.info.status == "FINISHED"
    loader = OmegaConfigLoader(str(root / "conf"), base_env="base", default_run_env="quick")
    expected = flat_params(dict(loader["parameters"]))
    logged = {**cycle.data.params, **{k: v for k, v in cycle.data.tags.items() if k in expected}}
    assert {k: logged.get(k) for k in expected} == expected  # every block, every leaf

    verdict = json.loads((root / "data/07_model_output/walk_forward_verdict.json").read_text())
    tags, metrics = cycle.data.tags, cycle.data.metrics
    assert tags["verdict.passed"] == str(verdict["passed"]).lower()
    assert tags["data_fingerprint"] == verdict["decided_on"]["data_fingerprint"]
    assert tags["verdict.decided_on"].startswith("walk_forward 2013-01-02..2017-12-29")
    assert {"git.commit", "git.dirty", "package.version", "compute.backend"} <= set(tags)
    assert metrics["gate.pbo"] == verdict["pbo"]["pbo"] and metrics["gate.dsr"] == verdict["dsr"]["value"]
    assert metrics["gate.psr_deflated"] == verdict["rules"]["min_psr"]["value"]
    table = pd.read_csv(root / "data/08_reporting/walk_forward_metrics.csv")
    row = lambda kind, agent: table[(table.kind == kind) & (table.agent == agent)].iloc[0]  # noqa: E731
    assert metrics["procedure.sharpe"] == pytest.approx(row("procedure", "procedure").sharpe, rel=1e-12)
    assert metrics["benchmark.buy_and_hold.sharpe"] == pytest.approx(row("benchmark", "buy_and_hold").sharpe)
    for agent in ("ppo", "a2c", "dqn"):
        assert metrics[f"agent.{agent}.total_return"] == pytest.approx(
            row("agent_selected", agent).total_return
        )

    folds = pd.read_csv(root / "data/08_reporting/walk_forward_folds.csv")
    tree = run_tree(root, cycle)
    assert [c["name"] for c in tree["children"]] == sorted(folds.fold)
    history = pd.read_parquet(root / "data/07_model_output/walk_forward_training_history.parquet")
    for child, fold in zip(tree["children"], folds.sort_values("fold").to_dict("records"), strict=True):
        assert child["metrics"]["validation_sharpe"] == pytest.approx(fold["validation_sharpe"])
        assert child["tags"]["champion"] == fold["champion"]
        rows = history[(history.fold == fold["fold"]) & (history.agent == "ppo") & (history.seed == 0)]
        rows = rows.dropna(subset=["eval_score"])  # the checkpoints; other rows log losses only
        assert child["history"]["ppo.seed0.eval_score"] == sorted(
            zip(rows.step, rows.eval_score, strict=True)
        )

    c = client(root)
    stored = Path(c.download_artifacts(cycle.info.run_id, "", str(root.parent / "downloaded")))
    for name in ("walk_forward_report.html", "walk_forward_stitched_equity.png", "walk_forward_folds.csv"):
        assert _md5(stored / "reports" / name) == _md5(root / "data/08_reporting" / name)
    assert _md5(stored / "verdict/walk_forward_verdict.json") == _md5(
        root / "data/07_model_output/walk_forward_verdict.json"
    )

    listed = json.loads(kedro(root, "models", "list", "--json", "--env", "quick").stdout)
    production = [e["entry_id"] for e in listed if e["status"] == "production"]
    assert mirror.aliases(c, EXPERIMENT) == {
        "production": production[0],
        "shadow": listed[-1]["entry_id"],
        "candidate": None,
    }


@pytest.mark.slow
@pytest.mark.parametrize("where", ["mlflow.yml", "MLFLOW_TRACKING_URI"])
def test_an_unreachable_tracking_server_stops_the_run_before_any_node_and_names_the_setting(tmp_path, where):
    root = copy_project(tmp_path / "project")
    uri = f"http://127.0.0.1:{free_port()}"
    conf = yaml.safe_load((root / "conf/base/mlflow.yml").read_text())
    conf["server"]["mlflow_tracking_uri"] = uri if where == "mlflow.yml" else None
    (root / "conf/local/mlflow.yml").write_text(yaml.safe_dump({"server": conf["server"]}))
    env = {"MLFLOW_TRACKING_URI": uri} if where == "MLFLOW_TRACKING_URI" else {}
    result = kedro(root, "run", "--pipelines", "full_cycle", **env)
    assert result.returncode == 1
    assert "server.mlflow_tracking_uri" in result.stderr and "MLFLOW_TRACKING_URI" in result.stderr
    assert f"{uri}: no MLflow tracking server answers there" in result.stderr
    assert "Traceback" not in result.stderr and "Running node" not in result.stderr
    assert not list((root / "data/02_intermediate").glob("*.parquet"))


@pytest.mark.slow
def test_tracking_off_for_a_run_opens_no_store(tmp_path):
    root = copy_project(tmp_path / "project")
    result = kedro(root, "run", "--pipelines", "data_ingestion", "--params", "tracking.enabled=false")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (root / "data/09_tracking/mlflow.db").exists()
