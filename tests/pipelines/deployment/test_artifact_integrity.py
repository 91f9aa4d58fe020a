"""A registered artifact is used only while its files match the SHA-256 recorded at registration.

The deployment path: the registration records the hashes of the artifact evaluation checked; the
paper accounts (production and shadow, single-asset and portfolio catalog entries, notebooks:
all through ``ModelRegistryDataset``) and ``kedro models promote`` refuse an artifact whose spec
or weights were edited afterwards, naming the file, both hashes and the fix.
"""

from __future__ import annotations

import json

import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from benchmarks.deployment_world import V1, V2, write_feed
from reinforce_strategy_creator.artifacts import ArtifactError, artifact_sha256
from reinforce_strategy_creator.deployment.registry import ModelRegistry
from tests.support.artifacts import TAMPERS
from tests.support.paper import account_files
from tests.support.project import catalog_config

#: every catalog entry a paper account (or a notebook) loads its model through
MODEL_DATASETS = (
    "deployment.production_model",
    "deployment.shadow_model",
    "portfolio.production_model",
    "portfolio.shadow_model",
)


def _folder(world, version):
    return world.policy_dir / version / "ppo_policy"


def _model_dataset(world, name):
    cfg = catalog_config(name)
    cfg[name]["filepath"] = str(world.registry)
    return DataCatalog.from_config(cfg)


def _assert_names_file_hashes_and_fix(message, folder, name, recorded):
    assert str(folder / name) in message  # the file
    assert recorded[name] in message  # the hash recorded at registration
    assert artifact_sha256(folder)[name] in message  # the hash found on disk
    assert "Restore the artifact" in message and "retrain" in message  # the fix


def test_the_registration_records_the_hashes_of_the_evaluated_artifact(traded):
    champion = json.loads(traded.champion.read_text())
    register = json.loads(traded.registry.read_text().splitlines()[0])
    assert register["event"] == "register"
    assert register["artifact_sha256"] == champion["policy_sha256"] == artifact_sha256(_folder(traded, V1))
    assert sorted(register["artifact_sha256"]) == ["seed_0.safetensors", "spec.json"]


@pytest.mark.parametrize("tamper", TAMPERS)
@pytest.mark.parametrize("dataset", MODEL_DATASETS)
def test_an_edited_registered_artifact_is_refused_by_every_model_dataset(traded, tamper, dataset):
    recorded = artifact_sha256(_folder(traded, V1))  # as registered (see the test above)
    edit, name = TAMPERS[tamper]
    edit(_folder(traded, V1))
    with pytest.raises(DatasetError) as err:
        _model_dataset(traded, dataset).load(dataset)
    _assert_names_file_hashes_and_fix(str(err.value), _folder(traded, V1), name, recorded)


@pytest.mark.parametrize("tamper", TAMPERS)
def test_the_paper_accounts_do_not_trade_an_edited_artifact(traded, tamper):
    """The tester's reproduction: a long-only model's spec edited to short (or its network or
    weights changed) traded on the paper account with exit code 0; now nothing is traded."""
    write_feed(traded.feed, end="2018-02-28")  # one new bar to trade
    accounts = account_files(traded.account), account_files(traded.shadow_account)
    edit, name = TAMPERS[tamper]
    edit(_folder(traded, V1))
    with pytest.raises(DatasetError, match="SHA-256"):
        traded.run(tags=["paper"])
    assert (account_files(traded.account), account_files(traded.shadow_account)) == accounts


def test_an_artifact_changed_between_evaluation_and_registration_is_not_registered(world):
    world.write_evaluation(V1, passed=True)  # the champion records the hashes evaluation checked
    edit, name = TAMPERS["positions [0, 1] -> [0, -1]"]
    edit(_folder(world, V1))
    with pytest.raises(DatasetError, match="spec.json' has SHA-256"):
        world.run(tags=["registry"])
    assert ModelRegistry(world.registry).list() == []


@pytest.mark.parametrize("tamper", TAMPERS)
def test_promote_refuses_an_edited_artifact(traded, tamper):
    traded.write_evaluation(V2, passed=False)
    traded.run(tags=["registry"])  # V2 registered as a candidate, not promoted
    registry = ModelRegistry(traded.registry)
    v2 = registry.newest()
    before = traded.registry.read_bytes()
    edit, name = TAMPERS[tamper]
    edit(_folder(traded, V2))
    with pytest.raises(ArtifactError) as err:
        registry.promote(v2.entry_id, force=True, reason="manual review")
    _assert_names_file_hashes_and_fix(str(err.value), _folder(traded, V2), name, v2.artifact_sha256)
    assert traded.registry.read_bytes() == before


def test_an_entry_registered_without_hashes_still_lists_but_is_not_used(traded):
    lines = traded.registry.read_text().splitlines()
    register = json.loads(lines[0])
    register.pop("artifact_sha256", None)  # as a registry written before the hashes were recorded
    traded.registry.write_text("\n".join([json.dumps(register), *lines[1:]]) + "\n")
    (entry,) = ModelRegistry(traded.registry).list()
    assert entry.status == "production" and entry.artifact_sha256 is None
    legacy = "registered before the registry recorded artifact hashes; retrain"
    with pytest.raises(DatasetError, match=legacy):
        traded.catalog().load("deployment.production_model")
