"""The production policy loads the same artifact whatever the working directory (e.g. notebooks/)."""

from __future__ import annotations

import torch

from reinforce_strategy_creator.artifacts import PolicyBundle, save_policy_bundle
from reinforce_strategy_creator.datasets.deployment import ModelRegistryDataset
from reinforce_strategy_creator.deployment.registry import ModelRegistry

VERSION = "2026-01-01T00.00.00.000Z"


def test_relative_artifact_path_resolves_from_the_project_not_the_cwd(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.kedro]\n")
    spec = {"algorithm": "ppo", "network": {}, "feature_names": ["feat_a"], "window": 2,
            "positions": [0.0, 1.0], "seeds": [0]}
    bundle = PolicyBundle(spec=spec, state_dicts={0: {"w": torch.arange(3.0)}})
    save_policy_bundle(bundle, project / "data/06_models/ppo_policy" / VERSION / "ppo_policy")

    registry_path = project / "data/07_model_output/registry.jsonl"
    registry = ModelRegistry(registry_path)
    entry_id = registry.register(agent="ppo", version=VERSION, seed=0, metrics={"validation_sharpe": 1.0},
                              verdict={"passed": True, "rules": {}}, artifact_path="data/06_models/ppo_policy")
    registry.promote(entry_id)

    monkeypatch.chdir(project / "notebooks")  # where a notebook kernel starts
    production = ModelRegistryDataset(str(registry_path)).load()
    assert production.available
    assert torch.equal(production.bundle.state_dicts[0]["w"], torch.arange(3.0))
