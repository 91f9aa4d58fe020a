"""Model registry: lifecycle, promotion guard, forced override audit, append-only. The history's
last line: test_registry_tail.py."""

from __future__ import annotations

import json

import pytest

from reinforce_strategy_creator.deployment.registry import (
    ARCHIVED,
    CANDIDATE,
    PRODUCTION,
    ModelRegistry,
    PromotionRefused,
    RegistryError,
)

PASS = {"passed": True, "reasons": []}
FAIL = {"passed": False, "reasons": ["sharpe below buy-and-hold"]}


def _reg(tmp_path):
    return ModelRegistry(tmp_path / "models" / "registry.jsonl")


def _register(reg, agent="ppo", version="2024-01-02T03.04.05.678Z", seed=1, verdict=PASS):
    return reg.register(
        agent=agent,
        version=version,
        seed=seed,
        metrics={"sharpe": 1.2},
        verdict=verdict,
        artifact_path=f"data/06_models/{agent}/{version}",
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
