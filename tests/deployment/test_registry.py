"""Model registry: lifecycle, promotion guard, forced override audit, append-only, artifact hashes
recorded at registration and checked before use. The history's last line: test_registry_tail.py."""

from __future__ import annotations

import json

import pytest

from reinforce_strategy_creator.artifacts import ArtifactError, artifact_sha256, versioned_artifact_path
from reinforce_strategy_creator.deployment.registry import (
    ARCHIVED,
    CANDIDATE,
    PRODUCTION,
    ModelRegistry,
    PromotionRefused,
    RegistryError,
    registration_request,
)
from tests.support.artifacts import TAMPERS, save_version

PASS = {"passed": True, "reasons": []}
FAIL = {"passed": False, "reasons": ["sharpe below buy-and-hold"]}


def _reg(tmp_path):
    return ModelRegistry(tmp_path / "models" / "registry.jsonl")


def _artifact(reg, agent="ppo", version="2024-01-02T03.04.05.678Z"):
    """(catalog folder, digest) of a real artifact version beside the registry (made once)."""
    filepath = reg.path.parent / f"{agent}_policy"
    folder = versioned_artifact_path(filepath, version)
    digest = artifact_sha256(folder) if folder.exists() else save_version(filepath, version)
    return str(filepath), digest


def _register(reg, agent="ppo", version="2024-01-02T03.04.05.678Z", seed=1, verdict=PASS):
    filepath, digest = _artifact(reg, agent, version)
    return reg.register(
        agent=agent,
        version=version,
        seed=seed,
        metrics={"sharpe": 1.2},
        verdict=verdict,
        artifact_path=filepath,
        artifact_sha256=digest,
    )


def test_register_promote_archive_rollback(tmp_path):
    reg = _reg(tmp_path)
    a = _register(reg, seed=1)
    b = _register(reg, seed=2)
    c = _register(reg, agent="dqn", seed=3)
    assert a == "ppo-2024-01-02T03.04.05.678Z-seed1"
    assert {e.status for e in reg.list()} == {CANDIDATE}
    reg.promote(a, actor="alice")
    reg.promote(b, actor="alice")
    st = reg.state()
    assert st.production == b and st.entries[a].status == ARCHIVED
    reg.promote(c, actor="bob")
    assert [e.entry_id for e in reg.list(PRODUCTION)] == [c]
    ev = reg.rollback(reason="live slippage too high", actor="bob")
    assert (ev["from"], ev["to"]) == (c, b)
    st = reg.state()
    assert st.production == b and st.entries[c].status == ARCHIVED
    reg.rollback(actor="bob")
    assert reg.production().entry_id == a
    with pytest.raises(RegistryError, match="no previous version"):
        reg.rollback()


def test_failed_verdict_refused_unless_forced_with_reason(tmp_path):
    reg = _reg(tmp_path)
    bad = _register(reg, verdict=FAIL)
    with pytest.raises(PromotionRefused, match="did not pass"):
        reg.promote(bad)
    with pytest.raises(RegistryError, match="--reason"):
        reg.promote(bad, force=True)
    ev = reg.promote(bad, force=True, reason="manual review of regime shift", actor="carol")
    assert ev["forced"] is True
    last = json.loads(reg.path.read_text().splitlines()[-1])
    assert last["event"] == "promote" and last["forced"] is True
    assert last["by"] == "carol" and last["reason"] == "manual review of regime shift"
    assert last["at"]  # when
    assert reg.production().entry_id == bad


def test_bad_input_is_named(tmp_path):
    reg = _reg(tmp_path)
    with pytest.raises(RegistryError, match="verdict"):
        reg.register(agent="ppo", version="v1", seed=1, metrics={}, verdict={"ok": 1})
    with pytest.raises(RegistryError, match="agent"):
        reg.register(agent="p p/o", version="v1", seed=1, metrics={}, verdict=PASS)
    _register(reg)
    with pytest.raises(RegistryError, match="already registered"):
        _register(reg)
    with pytest.raises(RegistryError, match="unknown entry"):
        reg.promote("nope")
    with pytest.raises(RegistryError, match="nothing is in production"):
        reg.rollback()


def test_history_is_append_only(tmp_path):
    reg = _reg(tmp_path)
    a = _register(reg, seed=1)
    b = _register(reg, seed=2)
    snapshots = [reg.path.read_bytes()]
    for action in (lambda: reg.promote(a), lambda: reg.promote(b), lambda: reg.rollback()):
        action()
        now = reg.path.read_bytes()
        assert now.startswith(snapshots[-1]) and len(now) > len(snapshots[-1])
        snapshots.append(now)
    kinds = [e["event"] for e in reg.events()]
    assert kinds == ["register", "register", "promote", "promote", "rollback"]


def test_corruption_before_the_end_is_an_error(tmp_path):
    reg = _reg(tmp_path)
    _register(reg, seed=1)
    _register(reg, seed=2)
    lines = reg.path.read_text().splitlines()
    reg.path.write_text(lines[0][:-5] + "\n" + lines[1] + "\n")
    with pytest.raises(RegistryError, match="line 1 is not valid JSON"):
        reg.list()


def test_a_metric_json_cannot_store_is_refused_and_nothing_is_written(tmp_path):
    reg = _reg(tmp_path)
    _register(reg, seed=1)
    before = reg.path.read_bytes()
    with pytest.raises(RegistryError, match="register event holds a value JSON cannot store"):
        reg.register(agent="ppo", version="v9", seed=0, metrics={"sharpe": float("nan")}, verdict=PASS)
    assert reg.path.read_bytes() == before


def test_the_registration_event_records_the_artifact_hashes(tmp_path):
    reg = _reg(tmp_path)
    entry_id = _register(reg, seed=1)
    (event,) = reg.events()
    folder = versioned_artifact_path(event["artifact_path"], event["version"])
    assert event["artifact_sha256"] == artifact_sha256(folder)
    assert sorted(event["artifact_sha256"]) == ["seed_0.safetensors", "spec.json"]
    assert reg.state().entries[entry_id].artifact_sha256 == event["artifact_sha256"]


def test_an_artifact_is_registered_only_with_its_hashes_and_only_as_they_are(tmp_path):
    reg = _reg(tmp_path)
    filepath, digest = _artifact(reg)
    args = dict(agent="ppo", version="2024-01-02T03.04.05.678Z", seed=0, metrics={}, verdict=PASS)
    with pytest.raises(RegistryError, match="artifact_sha256"):
        reg.register(**args, artifact_path=filepath)
    other = {**digest, "spec.json": "0" * 64}
    with pytest.raises(ArtifactError, match="spec.json' has SHA-256"):
        reg.register(**args, artifact_path=filepath, artifact_sha256=other)
    assert not reg.path.exists() or reg.events() == []


@pytest.mark.parametrize("tamper", TAMPERS)
@pytest.mark.parametrize("action", ["promote", "rollback", "check"])
def test_an_edited_registered_artifact_is_refused(tmp_path, tamper, action):
    reg = _reg(tmp_path)
    old = _register(reg, version="v1", seed=0)
    new = _register(reg, version="v2", seed=0)
    reg.promote(old)
    if action == "rollback":
        reg.promote(new)
    entry = reg.state().entries[old if action != "promote" else new]
    folder = reg.artifact_folder(entry)
    edit, name = TAMPERS[tamper]
    edit(folder)
    before = reg.path.read_bytes()
    with pytest.raises(ArtifactError) as err:
        {
            "promote": lambda: reg.promote(new),
            "rollback": lambda: reg.rollback(),
            "check": lambda: reg.check_artifact(entry),  # what every load runs first
        }[action]()
    message = str(err.value)
    assert str(folder / name) in message  # the file
    assert entry.artifact_sha256[name] in message and artifact_sha256(folder)[name] in message  # both hashes
    assert "Restore the artifact" in message and "retrain" in message  # the fix
    assert reg.path.read_bytes() == before  # nothing was recorded


def test_an_entry_registered_before_hashes_were_recorded_folds_but_is_never_used(tmp_path):
    reg = _reg(tmp_path)
    filepath, _ = _artifact(reg, version="v1")
    legacy = {
        "at": "2026-01-01T00:00:00+00:00",
        "event": "register",
        "entry_id": "ppo-v1-seed0",
        "agent": "ppo",
        "version": "v1",
        "seed": 0,
        "metrics": {},
        "verdict": {"passed": True},
        "artifact_path": filepath,
    }
    reg.path.parent.mkdir(parents=True, exist_ok=True)
    reg.path.write_text(json.dumps(legacy) + "\n")
    (entry,) = reg.list()
    assert entry.status == CANDIDATE and entry.artifact_sha256 is None
    for use in (lambda: reg.promote(entry.entry_id), lambda: reg.check_artifact(entry)):
        with pytest.raises(
            ArtifactError,
            match="records no SHA-256.*registered before the registry recorded artifact hashes; retrain",
        ):
            use()


@pytest.mark.parametrize("digest", [None, {}, "abc", {"spec.json": "not a hash"}])
def test_a_champion_without_the_hashes_evaluation_checked_is_not_registered(tmp_path, digest):
    champion = {
        "agent": "ppo",
        "seed": 0,
        "policy_version": "v1",
        "policy_filepath": "data/06_models/ppo_policy",
    }
    if digest is not None:
        champion["policy_sha256"] = digest
    with pytest.raises(RegistryError, match="policy_sha256|artifact_sha256"):
        request = registration_request(champion, {"passed": True}, auto_promote=True)
        _reg(tmp_path).apply_registration(request)


TWENTY = [f"T{i:02d}" for i in range(20)]


@pytest.mark.parametrize(
    ("universe", "label", "n"),
    [(None, "1 asset", 1), (["SPY"], "SPY", 1), (TWENTY, "20 assets: T00,T01,T02,...", 20)],
    ids=["before-universes", "N=1", "N=20"],
)
def test_an_entry_carries_its_universe_and_one_registry_holds_every_universe(tmp_path, universe, label, n):
    """A registration records its tickers; a line without them (written before universes were
    recorded) reads as one instrument. Entries of several universes live in one history: one
    production at a time, whatever its universe."""
    reg = _reg(tmp_path)
    filepath, digest = _artifact(reg)
    kwargs = {} if universe is None else {"universe": universe}
    entry_id = reg.register(
        agent="ppo",
        version="2024-01-02T03.04.05.678Z",
        seed=1,
        metrics={},
        verdict=PASS,
        artifact_path=filepath,
        artifact_sha256=digest,
        **kwargs,
    )
    line = json.loads(reg.path.read_text().splitlines()[-1])
    assert ("universe" in line) == (universe is not None)
    entry = reg.state().entries[entry_id]
    assert (entry.universe, entry.n_assets, entry.universe_label()) == (universe, n, label)
    assert entry.trades(universe or ["ANY"]) and not entry.trades(
        ["SPY", "QQQ"][: 3 - n] if n == 1 else ["T00"]
    )
    other = _register(reg, agent="dqn", seed=2)  # another universe (one instrument) beside it
    reg.promote(entry_id)
    reg.promote(other)
    assert reg.production().entry_id == other and reg.state().entries[entry_id].status == ARCHIVED


@pytest.mark.parametrize(
    ("universe", "match"),
    [("SPY", "list of tickers"), ([], "non-empty"), (["A", ""], "bad"), (["A", "B", "A"], "more than once")],
)
def test_a_bad_universe_is_refused_naming_it(tmp_path, universe, match):
    reg = _reg(tmp_path)
    with pytest.raises(RegistryError, match=match):
        reg.register(agent="ppo", version="v1", seed=1, metrics={}, verdict=PASS, universe=universe)
    assert not reg.path.exists()


def test_the_same_entry_registered_again_with_another_universe_is_refused(tmp_path):
    reg = _reg(tmp_path)
    filepath, digest = _artifact(reg)
    champion = {
        "agent": "ppo",
        "seed": 1,
        "policy_version": "2024-01-02T03.04.05.678Z",
        "policy_filepath": filepath,
        "policy_sha256": digest,
    }
    first = reg.apply_registration(registration_request(champion, PASS, False, ["SPY"]))
    again = reg.apply_registration(registration_request(champion, PASS, False, ["SPY"]))
    assert (first["action"], again["action"]) == ("registered", "already_registered")
    with pytest.raises(RegistryError, match="universe"):
        reg.apply_registration(registration_request(champion, PASS, False, ["QQQ"]))
