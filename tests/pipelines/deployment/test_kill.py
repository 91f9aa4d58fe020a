"""Crash safety through the pipeline path: SIGKILL ``kedro``-style runs at random moments.

The pipeline stages a whole run in memory and publishes it with one crash-safe commit
(``PaperAccountDataset`` -> ``AccountStore.commit_batch``); the registry is appended under a
lock with fsync. Whatever moment a run dies at, the committed account must reconcile, every
bar must be decided exactly once, and the final folder must be byte-identical to a run that
was never interrupted. The figures are printed for the closing note (run with ``-s``).
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reinforce_strategy_creator.deployment import AccountStore, ModelRegistry, reconcile
from reinforce_strategy_creator.deployment import state as state_module

from tests.support.deployment_world import V1, World, write_feed

WORKER = Path(__file__).with_name("kill_worker.py")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


def _run(folder: Path, kill_after: float | None):
    proc = subprocess.Popen([sys.executable, str(WORKER), str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # Kedro may log to stdout before the marker
        if line.strip() == "started":
            break
    else:
        raise AssertionError("worker ended before starting: " + proc.stderr.read()[-3000:])
    if kill_after is None:
        t0 = time.perf_counter()
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        return time.perf_counter() - t0
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return proc.returncode


@pytest.mark.slow
def test_random_sigkills_of_pipeline_runs(world):
    world.write_evaluation(V1, passed=True)
    ref = world.folder.parent / "reference"
    shutil.copytree(world.folder, ref)
    busy = _run(ref, None)
    rng = random.Random(7)
    kills = inconsistencies = committed_after_kill = 0
    feed_ends = ["2018-01-31", "2018-02-09", "2018-02-21", "2018-02-27"]
    for end in feed_ends:  # the feed grows between runs, as it would day by day
        write_feed(world.feed, end=end)
        for _ in range(5):
            store = AccountStore(world.account)
            before = store.load().bars_processed if store.exists() else 0
            if _run(world.folder, rng.uniform(0.0, 0.9 * busy)) == -signal.SIGKILL:
                kills += 1
            try:
                ModelRegistry(world.registry).state()
                if store.exists():
                    committed_after_kill += reconcile(store).bars_processed > before
                if AccountStore(world.shadow_account).exists():
                    reconcile(AccountStore(world.shadow_account))
            except ValueError:
                inconsistencies += 1
        _run(world.folder, None)
    duplicates = 0
    for folder in (world.account, world.shadow_account):
        state = reconcile(AccountStore(folder))
        orders = AccountStore(folder).read_log("orders", state)
        duplicates += len(orders) - len({o["bar"] for o in orders})
    identical = (_files(world.account) == _files(ref / "account")
                 and _files(world.shadow_account) == _files(ref / "shadow_account"))
    registry_events = [json.loads(x)["event"] for x in world.registry.read_text().splitlines()]
    print(f"\nKILL TEST (pipeline path): {kills} SIGKILLs, {committed_after_kill} runs committed "
          f"before being killed, {inconsistencies} inconsistent states, {duplicates} duplicated "
          f"decisions, final account byte-identical to an uninterrupted run: {identical}; "
          f"uninterrupted run {busy:.2f} s")
    assert kills >= 8 and inconsistencies == 0 and duplicates == 0 and identical
    assert registry_events == ["register", "promote"]


@pytest.mark.parametrize("crash_at", [2, 4])
def test_a_crash_inside_the_batch_commit_is_redone_exactly_once(world, monkeypatch, crash_at):
    """Writes of state.json: 1/3 initialise an account, 2/4 are the batch commit points of the
    first / second account saved. A crash at either leaves that account's logs appended but
    not committed; the next run redoes its bars once, and both accounts end byte-identical
    to an uninterrupted run."""
    world.write_evaluation(V1, passed=True)
    ref = World(world.folder.parent / "reference")  # same inputs, never interrupted
    shutil.copytree(world.folder, ref.folder, dirs_exist_ok=True)
    ref.run()

    real = state_module.atomic_write_json
    calls = {"n": 0}

    def dying_write(path, data):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise KeyboardInterrupt("simulated kill between log append and state commit")
        return real(path, data)

    monkeypatch.setattr(state_module, "atomic_write_json", dying_write)
    with pytest.raises(KeyboardInterrupt):
        world.run()
    stores = [AccountStore(f) for f in (world.account, world.shadow_account)]
    crashed = [s for s in stores if s.exists() and s.load().bars_processed == 0]
    assert len(crashed) == 1  # logs were appended but never committed
    assert any(p.stat().st_size for p in crashed[0].folder.glob("*.jsonl"))
    if crash_at == 4:  # the first account saved had committed everything
        done = next(s for s in stores if s is not crashed[0])
        assert reconcile(done).bars_processed > 0
    monkeypatch.setattr(state_module, "atomic_write_json", real)
    world.run()
    assert _files(world.account) == _files(ref.account)
    assert _files(world.shadow_account) == _files(ref.shadow_account)
