"""Walk-forward wall time and figures: the default run, a re-run with nothing changed, and the
gate on made markets.

Usage: ``python benchmarks/bench_walk_forward.py [--env ENV] [--markets momentum-s1 null-s1 ...]
[--write]``.

1. ``kedro run --pipelines full_cycle --params evaluation.scheme=walk_forward`` in a throw-away
   copy of the project (conf/base, or conf/<ENV> over it): wall time, the per-fold champions
   and test Sharpe against buy-and-hold, the stitched Sharpe of the procedure and of
   buy-and-hold, the verdict, PBO and DSR.
2. The same command again: every fold comes from the fold store (wall time of the re-run).
3. For each market of ``--markets`` (``markets.make_market`` names: ``<kind>-s<seed>``), the
   walk-forward engine in process with the same parameters: the gate's outcome.

``--write`` puts the tables between the ``bench_walk_forward`` markers of docs/walk_forward.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "walk_forward.md"
START, END = "<!-- bench_walk_forward:start -->", "<!-- bench_walk_forward:end -->"
KEDRO = Path(sys.executable).with_name("kedro")


def copy_project(dest: Path) -> Path:
    for part in ("conf", "src"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "local"))
    (dest / "conf" / "local").mkdir()
    shutil.copy(ROOT / "pyproject.toml", dest)
    shutil.copytree(ROOT / "data" / "01_raw", dest / "data" / "01_raw")
    return dest


def kedro_run(root: Path, env: str | None) -> float:
    cmd = [str(KEDRO), "run", "--pipelines", "full_cycle", "--params", "evaluation.scheme=walk_forward"]
    if env:
        cmd += ["--env", env]
    start = time.perf_counter()
    run = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"kedro run failed:\n{run.stderr[-4000:]}")
    return wall


def default_run(env: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-wf-") as tmp:
        root = copy_project(Path(tmp) / "project")
        first = kedro_run(root, env)
        again = kedro_run(root, env)
        folds = pd.read_csv(root / "data/08_reporting/walk_forward_folds.csv")
        verdict = json.loads((root / "data/07_model_output/walk_forward_verdict.json").read_text())
    return {"first_s": first, "rerun_s": again, "folds": folds, "verdict": verdict}


def market_gate(name: str, env: str | None) -> dict:
    from reinforce_strategy_creator.experiments import deep_merge
    from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv
    from reinforce_strategy_creator.markets import make_market
    from reinforce_strategy_creator.project_params import parameters
    from reinforce_strategy_creator.walk_forward import engine

    source = ROOT / "data" / "01_raw" / "sp500_daily_1999_2018.csv"
    prices, _ = normalise_prices(read_raw_csv(source), source=str(source))
    kind, seed = name.rsplit("-s", 1)
    market = make_market(kind, prices, seed=int(seed))
    params = deep_merge(parameters(env), {"environment": market.environment})
    start = time.perf_counter()
    features, plan = engine.plan(market.prices, params)
    results = engine.run_folds(plan.folds, features, market.prices, params)  # as the pipeline trains them
    record = engine.stitch(results, features, market.prices, params)
    verdict, _ = engine.judge(record, results, params)
    return {
        "market": name,
        "procedure Sharpe": verdict["procedure"]["sharpe"],
        "B&H Sharpe": verdict["buy_and_hold"]["sharpe"],
        "PBO": verdict["pbo"]["pbo"],
        "DSR": verdict["dsr"]["value"],
        "gate": "PASS" if verdict["passed"] else "fail",
        "wall s": time.perf_counter() - start,
    }


def _md(frame: pd.DataFrame) -> list[str]:
    cols = list(frame.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        out.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return out


def tables(run: dict, markets: list[dict], env: str | None) -> list[str]:
    v = run["verdict"]
    folds = run["folds"][
        ["label", "champion", "validation_sharpe", "procedure_test_sharpe", "buy_and_hold_test_sharpe"]
    ].rename(
        columns={
            "label": "test year",
            "validation_sharpe": "validation Sharpe",
            "procedure_test_sharpe": "test Sharpe",
            "buy_and_hold_test_sharpe": "B&H test Sharpe",
        }
    )
    lines = [
        f"Measured with `python benchmarks/bench_walk_forward.py{' --env ' + env if env else ''}` on "
        f"{platform.machine()}, {os.cpu_count()} CPU core(s); "
        f"`kedro run --pipelines full_cycle --params evaluation.scheme=walk_forward` "
        f"took **{run['first_s'] / 60:.1f} min**, and **{run['rerun_s']:.0f} s** again with nothing changed "
        "(every fold from the fold store).",
        "",
        *_md(folds),
        "",
        f"Stitched {v['decided_on']['start']} .. {v['decided_on']['end']}: procedure Sharpe "
        f"**{v['procedure']['sharpe']:.2f}**, buy-and-hold **{v['buy_and_hold']['sharpe']:.2f}**; gate "
        f"**{'PASS' if v['passed'] else 'fail'}**; PBO {v['pbo']['pbo']:.2f}, DSR {v['dsr']['value']:.2f}.",
    ]
    if markets:
        lines += [
            "",
            "Gate on made markets ([markets.md](markets.md)), same parameters:",
            "",
            *_md(pd.DataFrame(markets)),
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default=None)
    parser.add_argument("--markets", nargs="*", default=["momentum-s1", "null-s1"])
    parser.add_argument("--write", action="store_true")
    a = parser.parse_args()
    torch.set_num_threads(1)
    run = default_run(a.env)
    markets = [market_gate(m, a.env) for m in a.markets]
    lines = tables(run, markets, a.env)
    print("\n".join(lines))
    if a.write:
        doc = DOC.read_text()
        head, rest = doc.split(START, 1)
        DOC.write_text(head + START + "\n" + "\n".join(lines) + "\n" + rest[rest.index(END) :])


if __name__ == "__main__":
    main()
