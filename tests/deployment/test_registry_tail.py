"""The registry history's last line: a complete event without its newline is kept (it counts,
and the next write adds the newline); anything else there is torn: ignored with a warning on
read, and moved by the next write to ``<registry>.torn-<UTC timestamp>``, byte for byte."""

from __future__ import annotations

import json
import logging

import pytest

from reinforce_strategy_creator.deployment.registry import ARCHIVED, PRODUCTION, ModelRegistry

PASS = {"passed": True, "reasons": []}
FAIL = {"passed": False, "reasons": ["sharpe below buy-and-hold"]}


def _reg(tmp_path):
    return ModelRegistry(tmp_path / "models" / "registry.jsonl")


def _register(reg, seed=1, verdict=PASS):
    """An entry without an artifact: only the history's bytes matter here."""
    return reg.register(agent="ppo", version="v1", seed=seed, metrics={"sharpe": 1.2}, verdict=verdict)


def test_torn_last_line_is_ignored_then_moved_aside(tmp_path, caplog):
    reg = _reg(tmp_path)
    a = _register(reg, seed=1)
    good = reg.path.read_bytes()
    torn = b'{"event": "promote", "entry_id": "ppo-'
    with open(reg.path, "ab") as fh:  # a writer killed mid-append
        fh.write(torn)
    with caplog.at_level(logging.WARNING):
        assert [e.entry_id for e in reg.list()] == [a]  # torn event never happened
    assert "not one complete event" in caplog.text and reg.path.read_bytes() == good + torn  # read only
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        reg.promote(a)
    (aside,) = tmp_path.joinpath("models").glob("registry.jsonl.torn-*")
    assert aside.read_bytes() == torn  # the exact bytes, kept
    assert aside.name.startswith("registry.jsonl.torn-") and aside.name.endswith("Z")
    assert str(aside) in caplog.text
    data = reg.path.read_bytes()
    assert data.startswith(good) and data.endswith(b"\n")
    assert all(json.loads(line) for line in data.splitlines())
    assert reg.production().entry_id == a


@pytest.mark.parametrize("tail", [b'{"event": "promote", "entry_id": "nope"}', b"not json", b"[1, 2]"])
def test_a_last_line_that_is_not_an_event_that_folds_is_moved_aside(tmp_path, tail, caplog):
    reg = _reg(tmp_path)
    _register(reg, seed=1)
    good = reg.path.read_bytes()
    reg.path.write_bytes(good + tail)
    with caplog.at_level(logging.WARNING):
        _register(reg, seed=2)
    (aside,) = tmp_path.joinpath("models").glob("registry.jsonl.torn-*")
    assert aside.read_bytes() == tail and str(aside) in caplog.text
    assert reg.path.read_bytes().startswith(good) and len(reg.list()) == 2


@pytest.mark.parametrize("write", ["register", "promote", "gate_decision"])
def test_a_complete_last_line_without_its_newline_is_kept(tmp_path, write):
    """A forced promotion written by a tool that omits the final newline still happened: it
    counts on read, and the next write adds the newline before appending (no byte is lost)."""
    reg = _reg(tmp_path)
    a = _register(reg, seed=1, verdict=FAIL)
    b = _register(reg, seed=2)
    promotion = {
        "at": "2026-03-01T00:00:00+00:00",
        "event": "promote",
        "entry_id": a,
        "forced": True,
        "reason": "desk override",
        "by": "a tool",
        "previous": None,
    }
    line = json.dumps(promotion, sort_keys=True).encode()
    with open(reg.path, "ab") as fh:
        fh.write(line)  # no newline
    before = reg.path.read_bytes()
    assert reg.events()[-1] == promotion
    assert reg.state().entries[a].status == PRODUCTION and reg.production().entry_id == a
    if write == "register":
        _register(reg, seed=3)
    elif write == "promote":
        reg.promote(b)
    else:
        reg.record_gate_decision(
            {
                "data_fingerprint": "f",
                "window": {"start": "2017-01-03", "end": "2017-06-30"},
                "config_sha256": "c",
                "passed": True,
            }
        )
    data = reg.path.read_bytes()
    assert data.startswith(before + b"\n")  # every byte still there, the newline added
    assert reg.events()[2] == promotion
    assert reg.state().entries[a].status == (ARCHIVED if write == "promote" else PRODUCTION)
    assert not list(tmp_path.joinpath("models").glob("*.torn-*"))
