"""Crash safety: SIGKILL a bar-processing subprocess at random moments, resume, and check.

Each bar must be decided exactly once, logs must agree with the state, cash/shares must
replay from the trade log to the cent, and the final folder must be byte-identical to a run
that was never interrupted.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reinforce_strategy_creator.deployment import AccountStore, reconcile, replay_trades

from tests.support.paper import make_prices

WORKER = Path(__file__).with_name("crash_worker.py")
N_BARS = 120


def _run_worker(folder: Path, kill_after: float | None) -> float | int:
    """Run to completion (returns seconds spent after start-up) or SIGKILL (returns rc)."""
    proc = subprocess.Popen([sys.executable, str(WORKER), str(folder), str(N_BARS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    if kill_after is None:
        t0 = time.perf_counter()
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return time.perf_counter() - t0
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return proc.returncode


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


@pytest.mark.slow
def test_random_sigkills_never_trade_a_bar_twice(tmp_path):
    ref = tmp_path / "reference"
    busy = _run_worker(ref, None)  # seconds an uninterrupted run spends processing bars
    folder = tmp_path / "killed"
    rng = random.Random(20240601)
    kills_mid_run, progressed = 0, 0
    for _ in range(10):
        store = AccountStore(folder)
        done_before = store.load().bars_processed if store.exists() else 0
        if done_before == N_BARS:
            break
        # each kill lands within ~1/4 of the work, so several kills hit the bar loop
        rc = _run_worker(folder, rng.uniform(0.0, 0.25 * busy))
        if rc == -signal.SIGKILL:
            kills_mid_run += 1
        if store.exists():  # after every kill the committed state is consistent
            progressed += reconcile(store).bars_processed > done_before
    _run_worker(folder, None)  # finish
    print(f"\nKILL TEST (library, bar-by-bar commits): {kills_mid_run} SIGKILLs, {progressed} "
          f"killed runs had committed bars, final folder byte-identical: "
          f"{_files(folder) == _files(ref)}")
    assert kills_mid_run >= 3 and progressed >= 2  # killed mid-loop, not only at start-up

    store = AccountStore(folder)
    state = reconcile(store)
    prices = make_prices(N_BARS, seed=11)
    orders = store.read_log("orders", state)
    assert [o["bar"] for o in orders] == [t.isoformat() for t in prices.index]  # once each, in order
    assert replay_trades(state.initial_capital_cents, store.read_log("trades", state)) == (
        state.cash_cents, state.shares)
    assert _files(folder) == _files(ref)
