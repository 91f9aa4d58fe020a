"""A team's tracking server: ``mlflow server`` on a throwaway PostgreSQL on 127.0.0.1, the project
pointed at it by ``conf/local/mlflow.yml``. A tracked run and the registry mirror land on the
server, artifacts included (the server stores them: the experiment has no local artifact folder)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from reinforce_strategy_creator.deployment import ModelRegistry
from reinforce_strategy_creator.tracking import mirror
from tests.support.artifacts import save_version
from tests.support.postgres import binaries, free_port, postgres_server
from tests.support.project import copy_project, kedro
from tests.support.tracking import EXPERIMENT

pytestmark = pytest.mark.slow
MLFLOW = Path(sys.executable).with_name("mlflow")


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    if binaries() is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) are missing; .ci/run installs the postgresql package"
        )
    tmp = tmp_path_factory.mktemp("mlflow-server")
    with postgres_server() as url:
        port = free_port()
        log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [str(MLFLOW), "server", "--backend-store-uri", url.replace("postgresql://", "postgresql+psycopg2://"),
             "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        )  # fmt: skip
        uri = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{uri}/health", timeout=1).read()
                    break
                except OSError:
                    assert server.poll() is None and time.monotonic() < deadline, (
                        tmp / "server.log"
                    ).read_text()
                    time.sleep(0.5)
            yield uri
        finally:
            server.terminate()
            server.wait(timeout=20)
            log.close()


def test_a_run_and_the_registry_mirror_land_on_a_postgresql_backed_server(tracking_server, tmp_path):
    root = copy_project(tmp_path / "project")
    conf = yaml.safe_load((root / "conf/base/mlflow.yml").read_text())
    conf["server"]["mlflow_tracking_uri"] = tracking_server
    conf["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"] = None
    (root / "conf/local/mlflow.yml").write_text(yaml.safe_dump(conf))

    result = kedro(root, "run", "--pipelines", "data_ingestion")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "data_ingestion" and run.info.status == "FINISHED"
    assert run.data.params["data_ingestion.filepath"].endswith("sp500_daily_1999_2018.csv")
    assert [a.path for a in client.list_artifacts(run.info.run_id, "reports")] == [
        "reports/data_quality_report.json"
    ]
    assert not (root / "data/09_tracking/mlflow.db").exists()

    registry = ModelRegistry(root / "data/07_model_output/registry.jsonl")
    filepath = root / "data/06_models/ppo_policy"
    entry = registry.register(
        agent="ppo", version="2024-01-02T03.04.05.678Z", seed=0, metrics={}, verdict={"passed": True},
        artifact_path=str(filepath), artifact_sha256=save_version(filepath, "2024-01-02T03.04.05.678Z"),
    )  # fmt: skip
    assert kedro(root, "models", "promote", entry).returncode == 0
    assert mirror.aliases(client, EXPERIMENT) == {"production": entry, "shadow": entry, "candidate": None}
    version = client.get_model_version_by_alias(EXPERIMENT, "production")
    files = sorted(a.path for a in client.list_artifacts(version.run_id, "model"))
    assert files == ["model/seed_0.safetensors", "model/spec.json"]
