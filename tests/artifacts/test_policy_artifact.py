"""Policy artifacts: round trip, versioning, tamper detection against a digest recorded outside
the artifact, and no code execution on load."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from kedro.io.core import Version

from reinforce_strategy_creator.artifacts import (
    ArtifactError,
    PolicyBundle,
    artifact_sha256,
    digest_record_path,
    load_policy_bundle,
    save_policy_bundle,
)
from reinforce_strategy_creator.datasets.policy_artifact import PolicyArtifactDataset


def _bundle(seeds=(0, 1)) -> PolicyBundle:
    states = {}
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        states[s] = {
            "body.0.weight": torch.randn(4, 3, generator=g),
            "body.0.bias": torch.randn(4, generator=g),
        }
    spec = {
        "algorithm": "ppo",
        "network": {"hidden": [4]},
        "feature_names": ["feat_a"],
        "window": 3,
        "positions": [0.0, 1.0],
        "seeds": list(seeds),
        "best_seed": seeds[-1],
    }
    return PolicyBundle(spec=spec, state_dicts=states)


def _load(path, digest):
    return load_policy_bundle(path, expected_sha256=digest, recorded_in="the test's record")


def test_round_trip_is_exact(tmp_path):
    bundle = _bundle()
    digest = save_policy_bundle(bundle, tmp_path / "art")
    assert digest == artifact_sha256(tmp_path / "art")
    assert sorted(digest) == ["seed_0.safetensors", "seed_1.safetensors", "spec.json"]
    loaded = _load(tmp_path / "art", digest)
    assert loaded.sha256 == digest
    assert loaded.seeds == [0, 1]
    assert loaded.best_seed() == 1
    for s in bundle.seeds:
        for k, v in bundle.state_dicts[s].items():
            assert torch.equal(loaded.state_dicts[s][k], v)
    assert set(os.listdir(tmp_path / "art")) == {"spec.json", "seed_0.safetensors", "seed_1.safetensors"}


def test_refuses_to_overwrite(tmp_path):
    save_policy_bundle(_bundle(), tmp_path / "art")
    with pytest.raises(ArtifactError, match="overwrite"):
        save_policy_bundle(_bundle(), tmp_path / "art")


def test_tampered_weights_are_rejected(tmp_path):
    digest = save_policy_bundle(_bundle(), tmp_path / "art")
    other = tmp_path / "other"
    save_policy_bundle(_bundle(seeds=(5, 1)), other)
    # swap in weights of the same shape but different values
    os.replace(other / "seed_1.safetensors", tmp_path / "art" / "seed_0.safetensors")
    found = artifact_sha256(tmp_path / "art")["seed_0.safetensors"]
    with pytest.raises(ArtifactError, match="SHA-256") as err:
        _load(tmp_path / "art", digest)
    assert str(tmp_path / "art" / "seed_0.safetensors") in str(err.value)
    assert digest["seed_0.safetensors"] in str(err.value) and found in str(err.value)


def test_missing_weight_file_is_named(tmp_path):
    digest = save_policy_bundle(_bundle(), tmp_path / "art")
    os.remove(tmp_path / "art" / "seed_1.safetensors")
    with pytest.raises(ArtifactError, match="seed_1.safetensors"):
        _load(tmp_path / "art", digest)


@pytest.mark.parametrize("recorded", [None, {}, "no spec hash"])
def test_an_artifact_without_a_recorded_digest_is_refused(tmp_path, recorded):
    digest = save_policy_bundle(_bundle(), tmp_path / "art")
    if recorded == "no spec hash":
        recorded = {k: v for k, v in digest.items() if k != "spec.json"}
    with pytest.raises(ArtifactError, match="records no SHA-256.*Retrain"):
        _load(tmp_path / "art", recorded)


def _rewrite_spec(path, edit) -> None:
    import json

    spec = json.loads((path / "spec.json").read_text())
    edit(spec)
    (path / "spec.json").write_text(json.dumps(spec))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda spec: spec.pop("weights_sha256"), "records no weights_sha256"),
        (lambda spec: spec["weights_sha256"].pop("seed_1.safetensors"), "records no SHA-256 for 'seed_1"),
    ],
    ids=["no weights_sha256", "a seed without its hash"],
)
def test_a_spec_without_checksums_is_refused_even_when_the_record_matches_it(tmp_path, edit, message):
    """The spec's own weights_sha256 must cover every seed it lists, even when the recorded
    digest was taken of that very spec (an artifact written by hand or by an old tool)."""
    save_policy_bundle(_bundle(), tmp_path / "art")
    _rewrite_spec(tmp_path / "art", edit)
    with pytest.raises(ArtifactError, match=message):
        _load(tmp_path / "art", artifact_sha256(tmp_path / "art"))


def test_the_versioned_dataset_records_the_digest_beside_the_version_and_checks_it(tmp_path):
    path = str(tmp_path / "ppo_policy")
    version = "2026-01-01T00.00.00.000Z"
    bundle = _bundle()
    PolicyArtifactDataset(path, version=Version(None, version)).save(bundle)
    folder = tmp_path / "ppo_policy" / version / "ppo_policy"
    assert bundle.sha256 == artifact_sha256(folder)
    record = digest_record_path(folder)
    assert record.parent == folder.parent and record.is_file()  # beside the artifact, not inside
    loaded = PolicyArtifactDataset(path, version=Version(version, None)).load()
    assert loaded.sha256 == bundle.sha256

    before = artifact_sha256(folder)["spec.json"]
    _rewrite_spec(folder, lambda spec: spec.update(positions=[0.0, -1.0]))
    after = artifact_sha256(folder)["spec.json"]
    with pytest.raises(Exception, match="spec.json' has SHA-256") as err:
        PolicyArtifactDataset(path, version=Version(version, None)).load()
    assert before in str(err.value) and after in str(err.value) and str(record.name) in str(err.value)

    record.unlink()  # an artifact written without its record cannot be checked
    with pytest.raises(Exception, match="records no SHA-256"):
        PolicyArtifactDataset(path, version=Version(version, None)).load()


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_in_place_of_weights_cannot_execute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_policy_bundle(_bundle(seeds=(0,)), tmp_path / "art")
    spec_path = tmp_path / "art" / "spec.json"
    import json

    spec = json.loads(spec_path.read_text())
    spec["weights_sha256"] = {}  # an attacker would also drop the checksum
    spec_path.write_text(json.dumps(spec))
    with open(tmp_path / "art" / "seed_0.safetensors", "wb") as fh:
        pickle.dump(_Boom(), fh)
    # even a record taken of the tampered files (the attacker's) does not make it load
    with pytest.raises(ArtifactError):
        _load(tmp_path / "art", artifact_sha256(tmp_path / "art"))
    assert not (tmp_path / "PWNED").exists()


def test_failed_save_leaves_nothing_behind(tmp_path):
    bundle = _bundle()
    bundle.spec["bad"] = object()  # not JSON-serialisable: fails after weights were written
    with pytest.raises(TypeError):
        save_policy_bundle(bundle, tmp_path / "art")
    assert list(tmp_path.iterdir()) == []


def test_spec_and_seeds_must_agree():
    with pytest.raises(ArtifactError, match="seeds"):
        PolicyBundle(spec=_bundle().spec, state_dicts={7: {}})
    with pytest.raises(ArtifactError, match="required keys"):
        PolicyBundle(spec={"algorithm": "ppo"}, state_dicts={})


def test_versioned_dataset_keeps_every_version(tmp_path):
    path = str(tmp_path / "ppo_policy")
    ds1 = PolicyArtifactDataset(path, version=Version(None, "2026-01-01T00.00.00.000Z"))
    ds1.save(_bundle(seeds=(0,)))
    ds2 = PolicyArtifactDataset(path, version=Version(None, "2026-01-02T00.00.00.000Z"))
    ds2.save(_bundle(seeds=(0, 1)))

    latest = PolicyArtifactDataset(path, version=Version(None, None)).load()
    assert latest.version == "2026-01-02T00.00.00.000Z"
    assert latest.seeds == [0, 1]
    pinned = PolicyArtifactDataset(path, version=Version("2026-01-01T00.00.00.000Z", None)).load()
    assert pinned.seeds == [0]
    assert PolicyArtifactDataset(path, version=Version(None, None)).exists()
    assert not PolicyArtifactDataset(str(tmp_path / "none"), version=Version(None, None)).exists()


def test_load_policy_rebuilds_each_seed_and_names_what_is_wrong():
    """PolicyBundle.load_policy is the one way a bundle becomes a network again."""
    import pytest
    import torch

    from reinforce_strategy_creator.agents.networks import ActorCriticPolicy
    from reinforce_strategy_creator.artifacts import ArtifactError, PolicyBundle

    nets = {s: ActorCriticPolicy(6, 2, (8,), "tanh") for s in (0, 3)}
    for s, n in nets.items():
        torch.manual_seed(s)
        for p in n.parameters():
            torch.nn.init.normal_(p)
    spec = {
        **nets[0].spec,
        "feature_names": ["a"],
        "window": 1,
        "positions": [0, 1],
        "seeds": [0, 3],
        "best_seed": 3,
    }
    bundle = PolicyBundle(spec=spec, state_dicts={s: n.state_dict() for s, n in nets.items()}, version="v7")
    obs = torch.randn(32, 6)
    for seed in (0, 3):
        loaded = bundle.load_policy(seed)
        assert not loaded.training and torch.equal(loaded.logits(obs), nets[seed].logits(obs))
    assert torch.equal(bundle.load_policy().logits(obs), nets[3].logits(obs))  # best seed by default
    with pytest.raises(
        ArtifactError,
        match=r"version v7\) has no weights for seed 5 \(it has seeds \[0, 3\], and -1 for their ensemble\)",
    ):
        bundle.load_policy(5)
    wrong = PolicyBundle(spec={**spec, "obs_dim": 7}, state_dicts=bundle.state_dicts, version="v8")
    with pytest.raises(ArtifactError, match=r"my-name: seed 0 cannot be rebuilt .*Retrain"):
        wrong.load_policy(0, name="my-name")


@pytest.mark.parametrize("n_assets", [1, 3], ids=["N=1", "N=3"])
def test_loading_a_policy_leaves_the_global_random_generator_as_it_was(n_assets):
    """The network a policy is rebuilt into draws random initial weights before its trained ones
    are loaded; those draws must not move the global generator (a seeded draw after a load would
    differ from the same draw without it)."""
    from reinforce_strategy_creator.agents.networks import ActorCriticPolicy
    from reinforce_strategy_creator.agents.portfolio_policies import PortfolioActorCritic
    from reinforce_strategy_creator.candidates import ENSEMBLE_SEED

    def net():
        if n_assets == 1:
            return ActorCriticPolicy(6, 2, (8,), "tanh")
        return PortfolioActorCritic(n_assets, 2, 2, (8,), "tanh")

    nets = {s: net() for s in (0, 1)}
    spec = {**nets[0].spec, "feature_names": ["a"], "window": 2, "positions": [0, 1], "seeds": [0, 1]}
    bundle = PolicyBundle(spec=spec, state_dicts={s: n.state_dict() for s, n in nets.items()})
    torch.manual_seed(123)
    want = torch.rand(8)
    torch.manual_seed(123)
    bundle.load_policy(0)
    bundle.load_policy(ENSEMBLE_SEED)
    assert torch.equal(torch.rand(8), want)
