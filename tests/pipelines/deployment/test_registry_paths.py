"""The production policy loads the same artifact whatever the working directory (e.g. notebooks/)."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from reinforce_strategy_creator.datasets.deployment import ModelRegistryDataset
from reinforce_strategy_creator.deployment.registry import ModelRegistry
from tests.support.artifacts import save_version

VERSION = "2026-01-01T00.00.00.000Z"


def test_relative_artifact_path_resolves_from_the_project_not_the_cwd(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.kedro]\n")
    digest = save_version(project / "data/06_models/ppo_policy", VERSION)
    saved = load_file(str(project / "data/06_models/ppo_policy" / VERSION / "ppo_policy/seed_0.safetensors"))

    registry_path = project / "data/07_model_output/registry.jsonl"
    registry = ModelRegistry(registry_path)
    entry_id = registry.register(
        agent="ppo",
        version=VERSION,
        seed=0,
        metrics={"validation_sharpe": 1.0},
        verdict={"passed": True, "rules": {}},
        artifact_path="data/06_models/ppo_policy",
        artifact_sha256=digest,
    )
    registry.promote(entry_id)

    monkeypatch.chdir(project / "notebooks")  # where a notebook kernel starts
    production = ModelRegistryDataset(str(registry_path)).load()
    assert production.available and production.bundle.sha256 == digest
    for name, tensor in saved.items():
        assert torch.equal(production.bundle.state_dicts[0][name], tensor)


def test_reports_and_registry_stay_true_when_the_project_moves(_template, tmp_path):
    """paper_status.json and the registry store paths relative to the project root: after the
    project folder moves they still resolve (from the new root) to the files they name."""
    import json
    import shutil

    from benchmarks.deployment_world import V1, World
    from reinforce_strategy_creator.paths import resolve_in_project

    project = tmp_path / "project"
    (project).mkdir()
    (project / "pyproject.toml").write_text("[tool.kedro]\n")
    shutil.copytree(_template, project / "world")
    world = World(project / "world")
    world.write_evaluation(V1, passed=False)  # champion_filepath is recorded absolute by the world
    status = world.run()
    assert status["registry"] == "world/registry.jsonl"
    assert status["production"]["account"] == "world/account"
    assert status["shadow"]["account"] == "world/shadow_account"
    assert status["shadow"]["model_artifact"] == f"world/ppo_policy@{V1}"
    entry = ModelRegistry(world.registry).newest()
    assert entry.artifact_path == "world/ppo_policy"  # stored relative to the project root
    text = world.status.read_text() + world.registry.read_text()
    assert str(project) not in text  # no absolute path inside the project anywhere

    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    project.rename(moved)
    status = json.loads((moved / "world" / "paper_status.json").read_text())
    assert (resolve_in_project(status["shadow"]["account"], anchor=moved) / "state.json").is_file()
    assert resolve_in_project(status["registry"], anchor=moved).is_file()
    shadow = ModelRegistryDataset(str(moved / "world" / "registry.jsonl"), select="newest").load()
    assert shadow.available and shadow.entry_id == entry.entry_id  # its artifact still loads
