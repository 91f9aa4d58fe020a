"""Paper-trading speed: bars processed per second by the ``deployment`` pipeline.

A fresh paper account trades all of 2018 (251 real S&P 500 bars; the feed holds 1999-2018,
training features are 1999-2012 as configured) with a small PPO-shaped policy, through Kedro's
SequentialRunner and the project's catalog_deployment.yml (features from history, scaling,
observation, decision, fills, risk, drift check, one crash-safe commit; the drift thresholds are
calibrated once per run on the training windows). Reported: whole pipeline run, and the same with
the drift check every 20 bars, to show what the per-bar PSI/KS costs. Median of ``repeats`` fresh accounts.

Usage: ``python benchmarks/bench_paper.py [repeats]``. One torch thread.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.deployment_world import World, write_feed  # noqa: E402

VERSION = "2026-01-01T00.00.00.000Z"


def bars_per_second(template: Path, check_every: int, repeats: int) -> tuple[float, int]:
    rates, bars = [], 0
    for i in range(repeats):
        folder = template.parent / f"run_{check_every}_{i}"
        shutil.copytree(template, folder)
        world = World(folder)
        world.params["deployment"]["drift"]["check_every"] = check_every
        t = time.perf_counter()
        status = world.run()
        elapsed = time.perf_counter() - t
        bars = status["production"]["bars_processed_this_run"]  # the shadow account trades them too
        rates.append(bars / elapsed)
    return statistics.median(rates), bars


def main() -> None:
    torch.set_num_threads(1)
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        world = World(template, full_history=True)  # train 1999-2012 as configured
        write_feed(world.feed, start="1999-01-01", end="2018-12-31")
        world.make_policy(VERSION, torch_seed=1)
        world.write_evaluation(VERSION, passed=True)
        for check_every in (1, 20):
            rate, bars = bars_per_second(template, check_every, repeats)
            print(
                f"deployment pipeline, {bars} bars (2018), drift check every {check_every:>2} "
                f"bar(s): {rate:7.1f} bars/s (median of {repeats}, incl. Kedro start-up of the run)"
            )


if __name__ == "__main__":
    main()
