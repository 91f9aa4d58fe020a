"""Crash safety through the pipeline path: SIGKILL ``kedro``-style runs at random moments.

The pipeline stages a whole run in memory and publishes it with one crash-safe commit
(``PaperAccountDataset`` -> ``AccountStore.commit_batch``); the registry is appended under a
lock with fsync. Whatever moment a run dies at, the committed account must reconcile, every
bar must be decided exactly once, and the final folder must be byte-identical to a run that
was never interrupted. The figures are printed for the closing note (run with ``-s``).

The kills are aimed by progress, not by wall-clock time, so they land mid-run whatever the
machine's load: the worker reports every node and dataset save (kill_worker.py); a run (one
process forked by tests/support/forkserver.py, so the imports are paid once) is killed at a
random moment between two of its events, chosen at random, the gap's length measured on an
uninterrupted run; every other kill is aimed inside the save that commits an account. A kill
counts only if the worker had not reported ``finished``.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from benchmarks.deployment_world import V1, write_feed
from reinforce_strategy_creator.deployment import AccountStore, ModelRegistry, reconcile
from reinforce_strategy_creator.deployment import state as state_module
from tests.support.forkserver import ForkServer
from tests.support.paper import account_files

WORKER = Path(__file__).with_name("kill_worker.py")
EVENTS = ("started", "node+", "node-", "save+", "save-", "finished")
COMMITS = ("save+ deployment.account_update", "save+ deployment.shadow_account_update")


def _event(line: str) -> tuple[str, float] | None:
    """(``"kind name"``, monotonic time) of a progress line; None for anything else on stdout."""
    words = line.split()
    if not words or words[0] not in EVENTS:
        return None
    return " ".join(words[:-1]), float(words[-1])


def _run_to_end(server: ForkServer, folder: Path) -> list[tuple[str, float]]:
    run = server.start(str(folder))
    events = [e for e in map(_event, run) if e]
    assert run.wait() == 0, server.log_tail()
    assert events[0][0] == "started" and events[-1][0] == "finished", events[-3:]
    return events


def _killed_run(server: ForkServer, folder: Path, at: int, fraction: float, gaps: list[float]) -> dict:
    """Start a run and SIGKILL it ``fraction`` of the way from its event ``at`` to the next one."""
    run = server.start(str(folder))
    seen, last = -1, ""
    for event in filter(None, map(_event, run)):
        seen, last = seen + 1, event[0]
        if last == "finished":
            break
        if seen == at:
            time.sleep(fraction * gaps[at])
            break
    if last != "finished":
        run.kill()
    rest = [e[0] for e in map(_event, run.rest().splitlines()) if e]
    rc = run.wait()
    assert rc in (0, -signal.SIGKILL), server.log_tail()
    last = (rest or [last])[-1]
    return {"mid_run": rc == -signal.SIGKILL and last != "finished", "last": last}


@pytest.mark.slow
def test_random_sigkills_of_pipeline_runs(world, tmp_path):
    world.write_evaluation(V1, passed=True)
    ref = world.folder.parent / "reference"
    shutil.copytree(world.folder, ref)
    server = ForkServer(WORKER, tmp_path / "server")
    events = _run_to_end(server, ref)
    busy = events[-1][1] - events[0][1]
    gaps = [b[1] - a[1] for a, b in zip(events, events[1:])]
    commits = [i for i, (label, _) in enumerate(events) if label in COMMITS]
    assert len(commits) == 2, [label for label, _ in events]
    rng = random.Random(7)
    kills = inconsistencies = committed_after_kill = in_commit = 0
    feed_ends = ["2018-01-31", "2018-02-09", "2018-02-21", "2018-02-27"]
    for end in feed_ends:  # the feed grows between runs, as it would day by day
        write_feed(world.feed, end=end)
        for i in range(5):
            store = AccountStore(world.account)
            before = store.load().bars_processed if store.exists() else 0
            at = rng.choice(commits) if i % 2 else rng.randrange(len(gaps))
            kill = _killed_run(server, world.folder, at, rng.random(), gaps)
            kills += kill["mid_run"]
            in_commit += kill["last"] in COMMITS
            try:
                ModelRegistry(world.registry).state()
                if store.exists():
                    committed_after_kill += reconcile(store).bars_processed > before
                if AccountStore(world.shadow_account).exists():
                    reconcile(AccountStore(world.shadow_account))
            except ValueError:
                inconsistencies += 1
        _run_to_end(server, world.folder)
    server.close()
    duplicates = 0
    for folder in (world.account, world.shadow_account):
        state = reconcile(AccountStore(folder))
        orders = AccountStore(folder).read_log("orders", state)
        duplicates += len(orders) - len({o["bar"] for o in orders})
    identical = all(
        account_files(mine, split_runs=True) == account_files(theirs, split_runs=True)
        for mine, theirs in ((world.account, ref / "account"), (world.shadow_account, ref / "shadow_account"))
    )
    registry_events = [json.loads(x)["event"] for x in world.registry.read_text().splitlines()]
    print(
        f"\nKILL TEST (pipeline path): {kills} SIGKILLs mid-run, {in_commit} inside an account "
        f"commit, {committed_after_kill} runs committed before being killed, {inconsistencies} "
        f"inconsistent states, {duplicates} duplicated decisions, final account byte-identical to "
        f"an uninterrupted run: {identical}; uninterrupted run {busy:.2f} s"
    )
    assert kills >= 8 and inconsistencies == 0 and duplicates == 0 and identical
    assert registry_events == ["register", "promote"]


@pytest.mark.parametrize("crash_at", [2, 4])
def test_a_crash_inside_the_batch_commit_is_redone_exactly_once(world, traded, monkeypatch, crash_at):
    """Writes of state.json: 1/3 initialise an account, 2/4 are the batch commit points of the
    first / second account saved. A crash at either leaves that account's logs appended but
    not committed; the next run redoes its bars once, and both accounts end byte-identical
    to an uninterrupted run."""
    world.write_evaluation(V1, passed=True)
    ref = traded  # the same inputs, one run never interrupted

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
    assert list(crashed[0].folder.glob("*.jsonl.torn-*"))  # its uncommitted lines, set aside
    assert account_files(world.account, split_runs=True) == account_files(ref.account, split_runs=True)
    assert account_files(world.shadow_account, split_runs=True) == account_files(
        ref.shadow_account, split_runs=True
    )
