"""Paper-account bar loop at N = 1: bars per second of the account alone (fill, settlement, mark,
risk checks, decision, staged commit), without features, policy or disk.

A fresh in-memory account (``StagedAccount``) trades 2,000 synthetic bars with a decider that
changes its target every bar (a trade on every bar, shorts included), in whole and fractional
shares. Median of ``repeats`` runs. Compare two trees (both with ``PaperAccount``) in one shell run
(same machine, same load)::

    for t in /path/before /path/after; do PYTHONPATH=$t/src python benchmarks/bench_paper_loop.py; done

Usage: ``python benchmarks/bench_paper_loop.py [repeats]``. One torch thread.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import pandas as pd
import torch

from reinforce_strategy_creator.deployment import CostModel, PaperAccount, RiskLimits
from reinforce_strategy_creator.deployment.state import StagedAccount

BARS = 2000
TARGETS = (1.0, 0.5, -1.0, 0.0, 0.25)


def prices(n: int = BARS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    return pd.DataFrame({"Open": open_, "Close": close}, index=pd.bdate_range("2010-01-01", periods=n))


def bars_per_second(feed: pd.DataFrame, granularity: str) -> tuple[float, float]:
    """Bars per second of wall time and of this process's CPU time (steadier on a busy machine)."""
    broker = PaperAccount.instrument(
        StagedAccount("/tmp/bench-paper-loop", None),
        initial_capital=100_000.0,
        costs=CostModel(commission_bps=10, slippage_bps=5, borrow_bps_per_bar=1, fill_price="next_open"),
        limits=RiskLimits(),
        granularity=granularity,
    )
    t, cpu = time.perf_counter(), time.process_time()
    broker.run(feed, lambda history, state: TARGETS[len(history) % len(TARGETS)])
    return len(feed) / (time.perf_counter() - t), len(feed) / (time.process_time() - cpu)


def main() -> None:
    torch.set_num_threads(1)
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    feed = prices()
    for granularity in ("whole", "fractional"):
        runs = [bars_per_second(feed, granularity) for _ in range(repeats)]
        wall, cpu = (statistics.median(r[k] for r in runs) for k in (0, 1))
        print(
            f"paper bar loop N=1, {granularity:>10} shares: {wall:6.0f} bars/s wall, "
            f"{cpu:6.0f} bars/s CPU (median of {repeats})"
        )


if __name__ == "__main__":
    main()
