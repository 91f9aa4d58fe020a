"""Gate decisions recorded in the model registry, and the Kedro dataset over them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kedro.io.core import DatasetError

from reinforce_strategy_creator.datasets import (
    GateDecisionLogDataset,
    ModelRegistryDataset,
)
from reinforce_strategy_creator.deployment.registry import (
    ModelRegistry,
    RegistryError,
    fold,
)

WINDOW = {"start": "2017-01-03", "end": "2017-06-30"}


def _decision(**over):
    d = {"data_fingerprint": "abc123", "window": dict(WINDOW), "config_sha256": "f" * 64, "passed": True}
    d.update(over)
    return d


def test_decisions_are_recorded_in_order_with_their_extras(tmp_path):
    reg = ModelRegistry(tmp_path / "registry.jsonl")
    assert reg.gate_decisions() == []  # no file yet
    a = reg.register(agent="ppo", version="v1", seed=0, metrics={}, verdict={"passed": True})
    reg.promote(a, actor="t")
    before = reg.state()
    first = reg.record_gate_decision(_decision(sharpe=1.25, decided_on="2026-01-02", n_bars=124))
    second = reg.record_gate_decision(
        _decision(
            passed=False,
            data_fingerprint="def456",
            window={"start": "2017-07-03T00:00:00", "end": "2017-12-29T00:00:00"},
        )
    )
    assert first["event"] == "gate_decision" and first["at"] and first["sharpe"] == 1.25
    got = reg.gate_decisions()
    assert [d["data_fingerprint"] for d in got] == ["abc123", "def456"]
    assert got[0]["n_bars"] == 124 and got[0]["decided_on"] == "2026-01-02" and got[1]["passed"] is False
    assert got == [first, second]
    after = reg.state()  # decisions change no entry and no production
    assert after.production == before.production and after.production_stack == before.production_stack
    assert {k: (e.status, e.history) for k, e in after.entries.items()} == {
        k: (e.status, e.history) for k, e in before.entries.items()
    }
    lines = [json.loads(x) for x in reg.path.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["register", "promote", "gate_decision", "gate_decision"]


def test_numpy_values_are_recorded_as_plain_json(tmp_path):
    import numpy as np

    reg = ModelRegistry(tmp_path / "registry.jsonl")
    event = reg.record_gate_decision(
        _decision(
            passed=np.bool_(False), sharpe=np.float64(0.5), n_bars=np.int64(120), per_seed=[np.float32(0.25)]
        )
    )
    assert event["passed"] is False and reg.gate_decisions()[0]["n_bars"] == 120
    assert reg.gate_decisions()[0]["per_seed"] == [0.25]


def test_a_registry_written_before_gate_decisions_still_loads(tmp_path):
    path = tmp_path / "registry.jsonl"
    old = [
        {
            "at": "2026-01-01T00:00:00+00:00",
            "event": "register",
            "entry_id": "ppo-v1-seed0",
            "agent": "ppo",
            "version": "v1",
            "seed": 0,
            "metrics": {},
            "verdict": {"passed": True},
            "artifact_path": None,
        },
        {
            "at": "2026-01-01T00:00:01+00:00",
            "event": "promote",
            "entry_id": "ppo-v1-seed0",
            "forced": False,
            "reason": None,
            "by": "x",
            "previous": None,
        },
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in old))
    reg = ModelRegistry(path)
    assert reg.gate_decisions() == [] and reg.production().entry_id == "ppo-v1-seed0"
    reg.record_gate_decision(_decision())
    assert path.read_text().startswith("".join(json.dumps(e) + "\n" for e in old))  # append only


@pytest.mark.parametrize(
    "change, key",
    [
        ({"data_fingerprint": None}, "data_fingerprint"),
        ({"config_sha256": ""}, "config_sha256"),
        ({"passed": "yes"}, "passed"),
        ({"window": {"start": "2017-01-03"}}, "window"),
        ({"window": {"start": "2017-13-03", "end": "2017-06-30"}}, "window.start"),
        ({"window": {"start": "2017-01-03", "end": 20170630}}, "window.end"),
        ({"window": {"start": "2017-07-01", "end": "2017-06-30"}}, "starts"),
        ({"sharpe": float("nan")}, "sharpe"),
        ({"model": object()}, "model"),
        ({"at": "now"}, "reserved"),
    ],
)
def test_bad_decisions_name_the_key_and_write_nothing(tmp_path, change, key):
    reg = ModelRegistry(tmp_path / "registry.jsonl")
    reg.record_gate_decision(_decision())
    before = reg.path.read_bytes()
    with pytest.raises(RegistryError, match=key):
        reg.record_gate_decision(_decision(**change))
    assert reg.path.read_bytes() == before


@pytest.mark.parametrize("key", ["data_fingerprint", "window", "config_sha256", "passed"])
def test_a_missing_required_key_is_named(tmp_path, key):
    decision = _decision()
    del decision[key]
    with pytest.raises(RegistryError, match=f"lacks \\['{key}'\\]"):
        ModelRegistry(tmp_path / "r.jsonl").record_gate_decision(decision)
    with pytest.raises(RegistryError, match="must be a dict"):
        ModelRegistry(tmp_path / "r.jsonl").record_gate_decision([("passed", True)])
    assert not (tmp_path / "r.jsonl").exists()


_ops = st.lists(
    st.tuples(st.sampled_from(["register", "promote", "rollback", "gate"]), st.integers(0, 3), st.booleans()),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(ops=_ops)
def test_gate_decisions_never_change_entries_or_production(tmp_path_factory, ops):
    reg = ModelRegistry(tmp_path_factory.mktemp("reg") / "registry.jsonl")
    for kind, k, flag in ops:
        try:
            if kind == "register":
                reg.register(agent="ppo", version=f"v{k}", seed=0, metrics={}, verdict={"passed": flag})
            elif kind == "promote":
                reg.promote(f"ppo-v{k}-seed0", force=True, reason="property test")
            elif kind == "rollback":
                reg.rollback()
            else:
                reg.record_gate_decision(_decision(passed=flag, n_bars=k))
        except RegistryError:
            pass  # refusals given the state are fine; the history must stay consistent
    events = reg.events()
    with_gates, without = reg.state(), fold([e for e in events if e["event"] != "gate_decision"])
    assert with_gates.production_stack == without.production_stack
    assert {k: e.status for k, e in with_gates.entries.items()} == {
        k: e.status for k, e in without.entries.items()
    }
    assert len(with_gates.gate_decisions) == sum(1 for kind, _, _ in ops if kind == "gate")


def test_dataset_loads_and_saves_decisions_in_the_registry_file(tmp_path):
    path = tmp_path / "data" / "07_model_output" / "registry.jsonl"
    ds = GateDecisionLogDataset(filepath=str(path))
    assert ds.load() == [] and not ds.exists()
    ModelRegistry(path).register(agent="ppo", version="v1", seed=0, metrics={}, verdict={"passed": True})
    ds.save(_decision(sharpe=0.7))
    ds.save(_decision(passed=False))
    loaded = ds.load()
    assert [d["passed"] for d in loaded] == [True, False] and loaded[0]["sharpe"] == 0.7
    assert [e.entry_id for e in ModelRegistry(path).list()] == ["ppo-v1-seed0"]  # registry intact
    assert ModelRegistryDataset(filepath=str(path)).load().available is False  # nothing promoted
    with pytest.raises(Exception, match="window"):
        ds.save({"data_fingerprint": "x", "config_sha256": "y", "passed": True})
    assert len(ds.load()) == 2


def test_corrupt_history_is_named_not_a_traceback(tmp_path):
    path = tmp_path / "registry.jsonl"
    for bad, match in (
        ("[1, 2]\n", "event 1 is a JSON list"),
        ('{"event": "register"}\n', r"event 1 \(register\) lacks"),
        ('{"event": "gate_decision", "passed": true}\n', r"lacks \['data_fingerprint'"),
        ('{"event": "teleport"}\n', "unknown kind 'teleport'"),
    ):
        path.write_text(bad)
        with pytest.raises(RegistryError, match=match):
            ModelRegistry(path).gate_decisions()
        with pytest.raises(DatasetError, match=match):  # the hook prints it as a message
            GateDecisionLogDataset(filepath=str(path)).load()
