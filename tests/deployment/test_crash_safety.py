"""Crash safety of a paper account of one instrument or of a universe (N = 1 and N = 5, whole and
fractional shares): SIGKILL a bar-processing subprocess at random moments, resume, and check.

After every kill the folder must reconcile (the logs replaying to the state, every mark cash +
shares x close = equity), each bar must be decided exactly once, and the final folder must be
byte-identical to a run that was never interrupted: the same fills, cash and shares to the cent
(bit for bit for fractional accounts).

The kills are aimed by progress, not by wall-clock time, so they land mid-run whatever the
machine's load: the worker reports each commit on stdout (see crash_worker.py); a run (one
process forked by tests/support/forkserver.py, so the imports are paid once) is
killed after a random number of its bars are committed, at a random moment either of the next
bar or of the next commit (log append + ``state.json``), with the bar and commit durations
measured on an uninterrupted run. A kill counts as mid-run only if the worker had not
reported ``finished``.
"""

from __future__ import annotations

import random
import signal
import statistics
import time
from pathlib import Path

import pytest

from reinforce_strategy_creator.deployment import AccountStore, reconcile
from tests.support.forkserver import ForkServer
from tests.support.paper import CONFIG, account_files, make_panel, make_prices

WORKER = Path(__file__).with_name("crash_worker.py")
N_BARS = 100
KILLS = 24  # runs killed; forked runs are cheap, and each kill is a chance to catch a bad commit order


def _event(line: str) -> tuple[str, float]:
    words = line.split()
    return (words[0], float(words[-1])) if words else ("", 0.0)


def _run_to_end(server: ForkServer, folder: Path, args: tuple[str, str]) -> list[tuple[str, float]]:
    """An uninterrupted run: its progress events (kind, monotonic time)."""
    run = server.start(str(folder), str(N_BARS), *args)
    events = [_event(line) for line in run]
    assert run.wait() == 0, server.log_tail()
    assert events[0][0] == "started" and events[-1][0] == "finished", events[-3:]
    return events


def _timing(events: list[tuple[str, float]]) -> dict[str, float]:
    """Median seconds of one bar (commit to commit) and of one commit, and the busy period."""
    commits = [t for kind, t in events if kind == "commit"]
    committed = [t for kind, t in events if kind == "committed"]
    return {
        "bar": statistics.median(b - a for a, b in zip(committed, committed[1:])),
        "commit": statistics.median(b - a for a, b in zip(commits, committed)),
        "busy": events[-1][1] - events[0][1],
    }


def _killed_run(
    server: ForkServer,
    folder: Path,
    args: tuple[str, str],
    after: int,
    aim: str,
    fraction: float,
    timing: dict[str, float],
) -> dict:
    """Start a run, wait until ``after`` of its bars are committed, then SIGKILL it ``fraction``
    of the way through the next bar (``aim="bar"``) or the next commit (``aim="commit"``)."""
    run = server.start(str(folder), str(N_BARS), *args)
    seen, last = 0, ""
    while True:
        line = run.readline()
        if not line:  # the worker exited on its own: a crash, not a kill
            break
        last = _event(line)[0]
        if last == "finished":
            break
        seen += last == "committed"
        if aim == "bar" and seen == after and last in ("started", "committed"):
            time.sleep(fraction * timing["bar"])
            break
        if aim == "commit" and seen == after and last == "commit":
            time.sleep(fraction * timing["commit"])
            break
    if last != "finished":
        run.kill()
    rest = [_event(line)[0] for line in run.rest().splitlines()]
    rc = run.wait()
    assert rc in (0, -signal.SIGKILL), server.log_tail()
    last = (rest or [last])[-1]
    return {"mid_run": rc == -signal.SIGKILL and last != "finished", "in_commit": last == "commit"}


def _decided_bars(n_assets: int) -> list[str]:
    """The bars the worker's account decides on, in order: every bar of one instrument; a universe's
    from its first full observation window on."""
    if n_assets == 1:
        return [t.isoformat() for t in make_prices(N_BARS, seed=11).index]
    return [d.isoformat() for d in make_panel(N_BARS, n_assets=n_assets).dates[CONFIG.window - 1 :]]


@pytest.mark.slow
@pytest.mark.parametrize("n_assets", [1, 5], ids=["N=1", "N=5"])
@pytest.mark.parametrize("granularity", ["whole", "fractional"])
def test_random_sigkills_never_trade_a_bar_twice(tmp_path, n_assets, granularity):
    args = (granularity, str(n_assets))
    server = ForkServer(WORKER, tmp_path / "server")
    ref = tmp_path / "reference"
    timing = _timing(_run_to_end(server, ref, args))
    folder = tmp_path / "killed"
    rng = random.Random(20240601 + n_assets)
    n_decisions = len(_decided_bars(n_assets))
    kills_mid_run, progressed, in_commit = 0, 0, 0
    for i in range(KILLS):
        store = AccountStore(folder)
        done_before = store.load().bars_processed if store.exists() else 0
        if done_before == n_decisions:
            break
        # each kill lands within the next eighth of the remaining work; every other one is aimed
        # inside a commit
        after = rng.randrange(max(1, (n_decisions - done_before) // 8))
        kill = _killed_run(server, folder, args, after, ("bar", "commit")[i % 2], rng.random(), timing)
        kills_mid_run += kill["mid_run"]
        in_commit += kill["in_commit"]
        if store.exists():  # after every kill the committed state is consistent
            progressed += reconcile(store).bars_processed > done_before
    _run_to_end(server, folder, args)  # finish
    server.close()
    same = account_files(folder, split_runs=True) == account_files(ref, split_runs=True)
    print(
        f"\nKILL TEST (N={n_assets}, {granularity}, bar-by-bar commits): {kills_mid_run} SIGKILLs mid-run, "
        f"{in_commit} inside AccountStore.commit, {progressed} killed runs had committed bars, final "
        f"folder byte-identical: {same}; uninterrupted run {timing['busy']:.2f} s, "
        f"bar {1000 * timing['bar']:.1f} ms, commit {1000 * timing['commit']:.1f} ms"
    )
    assert kills_mid_run >= 3 and progressed >= 2  # killed mid-loop, not only at start-up

    store = AccountStore(folder)
    state = reconcile(store)  # the logs replay to the state, to the cent
    orders = store.read_log("orders", state)
    assert [o["bar"] for o in orders] == _decided_bars(n_assets)  # once each, in order
    assert same
