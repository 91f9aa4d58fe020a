"""Crash safety of the N-asset paper account: SIGKILL a bar-processing subprocess at random
moments, resume, and compare with a run that was never interrupted.

The kill test of test_crash_safety.py extended to portfolios: the worker
(portfolio_crash_worker.py, one process forked per run by tests/support/forkserver.py) trades 5
tickers (one listed mid-window) with risk limits; each run is killed after a random number of its
bars are committed, at a random moment of the next bar or of the next commit (log appends +
``state.json``). After every kill the folder must reconcile (every mark cash + shares x close =
equity, the logs replaying to the state), each bar must be decided exactly once, and the final
folder must be byte-identical to the uninterrupted run's: the same fills, cash and shares to the
cent (bit for bit for fractional accounts).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from reinforce_strategy_creator.deployment import AccountStore, reconcile
from reinforce_strategy_creator.deployment.portfolio_account import (
    portfolio_ledger,
)
from tests.deployment.portfolio_crash_worker import CONFIG, make_panel
from tests.deployment.test_crash_safety import _event, _timing
from tests.support.forkserver import ForkServer
from tests.support.paper import account_files

WORKER = Path(__file__).with_name("portfolio_crash_worker.py")
N_BARS = 80
KILLS = 24


def _run_to_end(server: ForkServer, folder: Path, granularity: str) -> list[tuple[str, float]]:
    run = server.start(str(folder), str(N_BARS), granularity)
    events = [_event(line) for line in run]
    assert run.wait() == 0, server.log_tail()
    assert events[0][0] == "started" and events[-1][0] == "finished", events[-3:]
    return events


def _killed_run(server, folder, granularity, after, aim, fraction, timing) -> dict:
    """As test_crash_safety._killed_run, for the portfolio worker."""
    import signal
    import time

    run = server.start(str(folder), str(N_BARS), granularity)
    seen, last = 0, ""
    while True:
        line = run.readline()
        if not line:
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


@pytest.mark.slow
@pytest.mark.parametrize("granularity", ["whole", "fractional"])
def test_random_sigkills_never_fill_a_portfolio_bar_twice(tmp_path, granularity):
    server = ForkServer(WORKER, tmp_path / "server")
    ref = tmp_path / "reference"
    timing = _timing(_run_to_end(server, ref, granularity))
    folder = tmp_path / "killed"
    rng = random.Random(20261130)
    n_decisions = N_BARS - (CONFIG.window - 1)
    kills_mid_run, progressed, in_commit = 0, 0, 0
    for i in range(KILLS):
        store = AccountStore(folder)
        done_before = store.load().bars_processed if store.exists() else 0
        if done_before == n_decisions:
            break
        after = rng.randrange(max(1, (n_decisions - done_before) // 8))
        kill = _killed_run(server, folder, granularity, after, ("bar", "commit")[i % 2], rng.random(), timing)
        kills_mid_run += kill["mid_run"]
        in_commit += kill["in_commit"]
        if store.exists():  # after every kill the committed state is consistent
            progressed += reconcile(store).bars_processed > done_before
    _run_to_end(server, folder, granularity)  # finish
    server.close()
    same = account_files(folder, split_runs=True) == account_files(ref, split_runs=True)
    print(
        f"\nPORTFOLIO KILL TEST ({granularity}): {kills_mid_run} SIGKILLs mid-run, {in_commit} inside "
        f"the commit, {progressed} killed runs had committed bars, final folder byte-identical: {same}; "
        f"uninterrupted run {timing['busy']:.2f} s, bar {1000 * timing['bar']:.1f} ms, commit "
        f"{1000 * timing['commit']:.1f} ms"
    )
    assert kills_mid_run >= 5 and progressed >= 3 and in_commit >= 2

    store = AccountStore(folder)
    state = reconcile(store)
    panel = make_panel(N_BARS)
    orders = store.read_log("orders", state)
    assert [o["bar"] for o in orders] == [d.isoformat() for d in panel.dates[CONFIG.window - 1 :]]
    killed, uninterrupted = portfolio_ledger(store), portfolio_ledger(AccountStore(ref))
    assert killed.equals(uninterrupted)  # every bar's cash, equity, costs and shares
    assert same
