"""The model registry's MLflow mirror: one version per registered champion (its safetensors and
JSON spec, checked against the registry's hashes), aliases and tags that follow promote, a forced
promotion and rollback, ``kedro models sync`` after a crash between the registry's commit and the
mirror's write."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from reinforce_strategy_creator.cli import cli
from reinforce_strategy_creator.deployment import ModelRegistry
from reinforce_strategy_creator.tracking import mirror
from tests.support.artifacts import save_version
from tests.support.project import copy_project

PASS, FAIL = {"passed": True}, {"passed": False}
MODEL = "reinforce_strategy_creator"  # conf/base/mlflow.yml's experiment
VERSION = "2024-01-02T03.04.05.678Z"


def _register(reg: ModelRegistry, agent: str, seed: int, verdict: dict) -> str:
    filepath = reg.path.parent / f"{agent}_policy"
    digest = save_version(filepath, VERSION, seeds=(seed,))
    return reg.register(
        agent=agent,
        version=VERSION,
        seed=seed,
        metrics={"sharpe": 1.0},
        verdict=verdict,
        artifact_path=str(filepath),
        artifact_sha256=digest,
    )


@pytest.fixture
def store(tmp_path, empty_store):
    client = MlflowClient(f"sqlite:///{empty_store(tmp_path / 'mlflow.db')}")
    return client, (tmp_path / "artifacts").as_uri()


def _sync(client, reg, artifacts):
    return mirror.sync(client, reg, "rsc", "rsc", artifacts)


def test_versions_aliases_and_tags_follow_the_registry_and_a_second_sync_changes_nothing(store, tmp_path):
    client, artifacts = store
    reg = ModelRegistry(tmp_path / "models" / "registry.jsonl")
    a = _register(reg, "ppo", 1, PASS)
    b = _register(reg, "dqn", 2, FAIL)
    report = _sync(client, reg, artifacts)
    assert report.created == [a, b]
    assert mirror.aliases(client, "rsc") == {"production": None, "shadow": b, "candidate": b}
    version = client.get_model_version_by_alias("rsc", "shadow")
    files = sorted(f.path for f in client.list_artifacts(version.run_id, "model"))
    assert files == ["model/seed_2.safetensors", "model/spec.json"]  # never a pickle
    digest = reg.list()[1].artifact_sha256
    assert {k[len("sha256.") :]: v for k, v in version.tags.items() if k.startswith("sha256.")} == digest

    reg.promote(a, actor="alice")
    _sync(client, reg, artifacts)
    assert mirror.aliases(client, "rsc") == {"production": a, "shadow": b, "candidate": b}
    reg.promote(b, force=True, reason="desk override", actor="bob")
    report = _sync(client, reg, artifacts)
    assert mirror.aliases(client, "rsc") == {"production": b, "shadow": b, "candidate": None}
    tags = client.get_model_version_by_alias("rsc", "production").tags
    assert (tags["status"], tags["verdict.passed"]) == ("production", "false")
    assert (tags["promotion.forced"], tags["promotion.reason"], tags["promotion.by"]) == (
        "true",
        "desk override",
        "bob",
    )
    assert set(report.retagged) == {a, b}

    reg.rollback(reason="bad week", actor="carol")
    _sync(client, reg, artifacts)
    assert mirror.aliases(client, "rsc") == {"production": a, "shadow": b, "candidate": None}
    assert client.get_model_version_by_alias("rsc", "production").tags["status"] == "production"
    assert not _sync(client, reg, artifacts).changed


def test_an_artifact_that_fails_its_hash_is_not_mirrored_and_the_report_names_it(store, tmp_path):
    client, artifacts = store
    reg = ModelRegistry(tmp_path / "models" / "registry.jsonl")
    a = _register(reg, "ppo", 1, PASS)
    spec = reg.artifact_folder(reg.list()[0]) / "spec.json"
    spec.write_text(spec.read_text().replace("[", "[ ", 1))
    report = _sync(client, reg, artifacts)
    assert report.created == [] and "spec.json" in report.skipped[a]
    assert mirror.aliases(client, "rsc")["shadow"] is None


def test_after_a_crash_between_the_registry_commit_and_the_mirror_sync_makes_them_agree(
    tmp_path, monkeypatch, empty_store
):
    root = copy_project(tmp_path / "project", raw=False)
    empty_store(root / "data/09_tracking/mlflow.db")
    reg = ModelRegistry(root / "data" / "07_model_output" / "registry.jsonl")
    a = _register(reg, "ppo", 1, PASS)
    b = _register(reg, "dqn", 2, FAIL)
    monkeypatch.chdir(root)
    runner = CliRunner()
    assert runner.invoke(cli, ["models", "sync"]).exit_code == 0
    client = MlflowClient("sqlite:///data/09_tracking/mlflow.db")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after the registry committed

    monkeypatch.setattr(mirror, "sync", crash)
    runner.invoke(cli, ["models", "promote", b, "--force", "--reason", "ci: crash test"])
    listed = json.loads(runner.invoke(cli, ["models", "list", "--json"]).output)
    assert {e["entry_id"]: e["status"] for e in listed} == {a: "candidate", b: "production"}
    assert mirror.aliases(client, MODEL) == {"production": None, "shadow": b, "candidate": b}
    monkeypatch.undo()
    monkeypatch.chdir(root)
    synced = runner.invoke(cli, ["models", "sync", "--json"])
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.output)["aliases"] == {"production": b, "shadow": b, "candidate": a}
    assert mirror.aliases(client, MODEL) == {"production": b, "shadow": b, "candidate": a}

    rolled = runner.invoke(cli, ["models", "promote", a])  # the command's own mirror write
    assert rolled.exit_code == 0, rolled.output
    assert mirror.aliases(client, MODEL)["production"] == a
    assert runner.invoke(cli, ["models", "rollback", "--reason", "ci"]).exit_code == 0
    assert mirror.aliases(client, MODEL)["production"] == b
