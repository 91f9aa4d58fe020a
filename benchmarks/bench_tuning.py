"""Wall time and trials per hour of a PPO hyperparameter study, sequential vs Dask.

The default data (the S&P 500 file through ``data_ingestion``'s cleaning) and conf/base
(``tuning``, ``training.ppo``, walk-forward layout), with the budget set on the command line.
Each backend runs its own fresh study in a temporary journal file (a LocalCluster of
``--workers`` Dask workers on this machine; ``--address tcp://host:8786 --storage postgresql://...``
for a real cluster), so the two never share trials. Usage::

    python benchmarks/bench_tuning.py --trials 20 --workers 4                  # conf/base budget
    python benchmarks/bench_tuning.py --trials 6 --folds 2 --total-steps 8192 --seeds 0 --workers 2
    python benchmarks/bench_tuning.py --backends sequential                    # one backend only
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

from reinforce_strategy_creator.experiments import deep_merge  # noqa: E402
from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv  # noqa: E402
from reinforce_strategy_creator.project_params import parameters  # noqa: E402
from reinforce_strategy_creator.tuning import run_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--folds", type=int, default=None, help="tuning.folds (default: conf/base)")
    ap.add_argument("--total-steps", type=int, default=None, help="tuning.total_steps (default: conf/base)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="tuning.seeds (default: conf/base)")
    ap.add_argument(
        "--backends", nargs="+", default=["sequential", "dask"], choices=["sequential", "processes", "dask"]
    )
    ap.add_argument("--address", default=None, help="compute.address of a running Dask scheduler")
    ap.add_argument("--storage", default=None, help="tuning.storage (postgresql://... with --address)")
    ap.add_argument(
        "--pruner", default="none", choices=["none", "median"], help="none: every trial trains every fold"
    )
    args = ap.parse_args()

    base = parameters()
    prices, _ = normalise_prices(read_raw_csv(base["data_ingestion"]["filepath"]), source="bench")
    rows = []
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            tuning = {
                "n_trials": args.trials,
                "study_name": f"bench_{backend}_{int(time.time())}",
                "pruner": args.pruner,
            }
            tuning["storage"] = args.storage or f"{tmp}/study.journal"
            for key, value in (
                ("folds", args.folds),
                ("total_steps", args.total_steps),
                ("seeds", args.seeds),
            ):
                if value is not None:
                    tuning[key] = value
            compute = {
                "backend": backend,
                "workers": args.workers,
                "address": args.address if backend == "dask" else None,
            }
            p = deep_merge(base, {"tuning": tuning, "compute": compute})
            p["training"]["common"]["progress"] = False
            result = run_study(prices, p)
            s = result.summary
            rows.append(
                {
                    "backend": backend,
                    "workers": s["compute"]["workers"],
                    "trials": s["trials_this_run"],
                    "complete": s["trials"]["complete"],
                    "pruned": s["trials"]["pruned"],
                    "wall_s": round(s["wall_time_s"], 1),
                    "trials_per_hour": round(s["trials_per_hour"], 1),
                    "best_value": round(s["best_value"], 3),
                    "folds": len(s["validation_windows"]),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'backend':<11} {'workers':>7} {'trials':>6} {'wall s':>8} {'trials/h':>9} {'best':>7}")
    for r in rows:
        print(
            f"{r['backend']:<11} {r['workers']:>7} {r['trials']:>6} {r['wall_s']:>8} "
            f"{r['trials_per_hour']:>9} {r['best_value']:>7}"
        )


if __name__ == "__main__":
    main()
