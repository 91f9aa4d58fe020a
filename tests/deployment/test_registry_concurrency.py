"""Concurrent writers on one registry: promote, rollback and gate decisions from several OS
processes at once. Every write must read, check and append under one lock, so whatever the
interleaving the history folds, every promote records the production it replaced and every
rollback restores the one before, and no acknowledged write is lost.

(Before the fix, ``promote`` / ``rollback`` read the state outside the lock: an interleaved
promote made a rollback record a ``from`` that was no longer production and the registry
stopped loading; this test failed on that code.)
"""

from __future__ import annotations

import multiprocessing as mp
import random

import pytest

from reinforce_strategy_creator.deployment.registry import ModelRegistry, RegistryError
from tests.support.artifacts import save_version

N_PROCESSES, N_OPS, ROUNDS = 3, 40, 3
# entry -> passed; failing entries are promoted with force (recorded)
ENTRIES = {"v1": True, "v2": False, "v3": True, "v4": False, "v5": True}


def _setup(path) -> list[str]:
    reg = ModelRegistry(path)
    filepath = path.parent / "ppo_policy"
    ids = [
        reg.register(
            agent="ppo",
            version=v,
            seed=0,
            metrics={"sharpe": 1.0},
            verdict={"passed": passed},
            artifact_path=str(filepath),
            artifact_sha256=save_version(filepath, v),
        )
        for v, passed in ENTRIES.items()
    ]
    reg.promote(ids[0], actor="setup")
    reg.promote(ids[2], actor="setup")  # two production versions: rollback is possible at once
    return ids


def _worker(path: str, seed: int, ids: list[str], barrier, results) -> None:
    rng = random.Random(seed)
    reg = ModelRegistry(path)
    passed = dict(zip(ids, ENTRIES.values()))
    done = refused = 0
    errors: list[str] = []
    barrier.wait()
    for i in range(N_OPS):
        roll = rng.random()
        try:
            if roll < 0.4:
                reg.rollback(reason="concurrency test", actor=f"worker{seed}")
            elif roll < 0.5:
                reg.record_gate_decision(
                    {
                        "data_fingerprint": f"fp{seed}",
                        "window": {"start": "2017-01-03", "end": "2017-06-30"},
                        "config_sha256": "c" * 64,
                        "passed": bool(i % 2),
                        "n_bars": i,
                    }
                )
            else:
                entry = rng.choice(ids)
                reg.promote(
                    entry,
                    force=not passed[entry],
                    reason=None if passed[entry] else "concurrency test override",
                    actor=f"worker{seed}",
                )
            done += 1
        except RegistryError as exc:
            expected = ("already in production", "no previous version", "nothing is in production")
            if any(text in str(exc) for text in expected):
                refused += 1  # a legitimate refusal given the state at that moment
            else:
                errors.append(str(exc))
    results.put((seed, done, refused, errors))


def _replay(events: list[dict]) -> tuple[str | None, list[str]]:
    """An independent replay of the history (not the registry's fold)."""
    registered: set[str] = set()
    production, stack = None, []
    for n, ev in enumerate(events, start=1):
        kind = ev["event"]
        if kind == "register":
            registered.add(ev["entry_id"])
        elif kind == "promote":
            assert ev["entry_id"] in registered, n
            assert ev["previous"] == production, (
                f"event {n}: promote records previous={ev['previous']}, but {production} was in production"
            )
            production = ev["entry_id"]
            stack.append(production)
        elif kind == "rollback":
            assert len(stack) >= 2 and ev["from"] == production and ev["to"] == stack[-2], (
                f"event {n}: rollback {ev['from']} -> {ev['to']} with production stack {stack}"
            )
            stack.pop()
            production = stack[-1]
        else:
            assert kind == "gate_decision", n
    return production, stack


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_promote_and_rollback_keep_the_history_consistent(tmp_path, round_):
    path = tmp_path / "registry.jsonl"
    ids = _setup(path)
    n_setup = len(ModelRegistry(path).events())
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(N_PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(str(path), 100 * round_ + k, ids, barrier, results))
        for k in range(N_PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    errors = [e for *_, errs in outcomes for e in errs]
    assert not errors, errors[:3]

    reg = ModelRegistry(path)
    state = reg.state()  # loads
    events = reg.events()
    done = sum(o[1] for o in outcomes)
    assert len(events) == n_setup + done  # every acknowledged write is there, once
    assert sum(o[1] for o in outcomes) > N_PROCESSES * N_OPS // 3  # the writers really wrote
    production, stack = _replay(events)
    assert (state.production, state.production_stack) == (production, stack)
    assert sum(1 for e in events if e["event"] == "rollback") >= 3
    assert len(reg.gate_decisions()) == sum(1 for e in events if e["event"] == "gate_decision")
