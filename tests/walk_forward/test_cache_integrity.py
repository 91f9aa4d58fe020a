"""A stored fold's policies are checked against the digests in its ``fold.json`` before use."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
from kedro.io import Version

from reinforce_strategy_creator.artifacts import ArtifactError, artifact_sha256
from reinforce_strategy_creator.datasets.policy_artifact import PolicyArtifactDataset
from reinforce_strategy_creator.walk_forward.cache import FoldCache
from tests.support.artifacts import TAMPERS, save_version

KEY = "0123456789abcdef01234567"


def _stored_fold(tmp_path) -> FoldCache:
    """A fold result with one real policy, stored under ``KEY`` (no training: the cache only
    stores what it is given)."""
    source = tmp_path / "source"
    save_version(source, "v1")
    bundle = PolicyArtifactDataset(str(source), version=Version("v1", None)).load()
    result = SimpleNamespace(
        bundles={"ppo": bundle},
        histories={"ppo": pd.DataFrame({"update": [0], "reward": [0.0]})},
        validation=pd.DataFrame({"agent": ["ppo"], "sharpe": [1.0]}),
        fold=SimpleNamespace(to_dict=lambda: {"name": "fold_1"}),
        champion={"agent": "ppo", "seed": 0},
        best_seed={"ppo": 0},
        tables=SimpleNamespace(scaler={"kind": "standard"}),
    )
    cache = FoldCache(tmp_path / "folds")
    cache.save(KEY, result)
    return cache


def test_a_stored_fold_records_its_policy_digests_and_loads_them_checked(tmp_path):
    cache = _stored_fold(tmp_path)
    stored = cache.load(KEY)
    assert stored["bundles"]["ppo"].sha256 == artifact_sha256(cache.path(KEY) / "ppo.policy")


@pytest.mark.parametrize("tamper", TAMPERS)
def test_an_edited_stored_policy_is_refused(tmp_path, tamper):
    cache = _stored_fold(tmp_path)
    folder = cache.path(KEY) / "ppo.policy"
    recorded = artifact_sha256(folder)
    edit, name = TAMPERS[tamper]
    edit(folder)
    with pytest.raises(ArtifactError) as err:
        cache.load(KEY)
    message = str(err.value)
    assert str(folder / name) in message and "fold.json" in message
    assert recorded[name] in message and artifact_sha256(folder)[name] in message
    assert f"Delete the stored fold '{cache.path(KEY)}'" in message
