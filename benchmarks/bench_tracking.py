"""What MLflow tracking costs a run: the wall time of ``kedro run --pipelines full_cycle`` with
tracking on (the default) against the same run with ``--params tracking.enabled=false``, in the
same benchmark run, each in a fresh copy of the project (no fold store, no earlier store), the
two modes interleaved; and the size of the store one tracked run leaves (``data/09_tracking``).

Usage: ``python benchmarks/bench_tracking.py [--repeats N] [--env quick] [--write]``. Default: the
default ``full_cycle`` (the embedded S&P 500, five folds), 2 repeats. ``--write`` replaces the
generated table of docs/tracking.md's "What tracking costs".
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "tracking.md"
sys.path.insert(0, str(ROOT / "src"))

from reinforce_strategy_creator.paths import copy_project  # noqa: E402

ENV = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
ENV.pop("PYTHONPATH", None)
KEDRO = str(Path(sys.executable).with_name("kedro"))
BEGIN, END = "<!-- BEGIN GENERATED: bench_tracking -->", "<!-- END GENERATED: bench_tracking -->"


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def one_run(tmp: Path, tracked: bool, env: str | None) -> tuple[float, int]:
    root = tmp / ("on" if tracked else "off")
    shutil.rmtree(root, ignore_errors=True)
    copy_project(ROOT, root, envs=("base", env) if env else ("base",))
    args = [KEDRO, "run", "--pipelines", "full_cycle", *(["--env", env] if env else [])]
    if not tracked:
        args += ["--params", "tracking.enabled=false"]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=root, env=ENV, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    store = root / "data" / "09_tracking"
    return wall, size(store) if store.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--env", default=None, help="a Kedro environment, e.g. quick (default: base)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    walls: dict[bool, list[float]] = {True: [], False: []}
    sizes = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rsc-bench-tracking-") as tmp:
        for i in range(args.repeats):
            for tracked in (False, True) if i % 2 == 0 else (True, False):
                wall, stored = one_run(Path(tmp), tracked, args.env)
                walls[tracked].append(wall)
                if tracked:
                    sizes.append(stored)
                print(f"repeat {i + 1}: tracking {'on ' if tracked else 'off'} {wall:7.1f} s", flush=True)
    on, off = statistics.median(walls[True]), statistics.median(walls[False])
    command = "kedro run --pipelines full_cycle" + (f" --env {args.env}" if args.env else "")
    flags = (f" --env {args.env}" if args.env else "") + f" --repeats {args.repeats}"
    runs = {k: ", ".join(f"{w:.1f}" for w in v) for k, v in walls.items()}
    text = (
        f"`python benchmarks/bench_tracking.py{flags} --write`, {dt.date.today()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, load average "
        f"{load:.1f} before; `{command}` in a fresh project copy per run, the modes interleaved.\n\n"
        "| tracking | wall s, median | runs (s) |\n| --- | ---: | --- |\n"
        f"| off (`--params tracking.enabled=false`) | {off:.1f} | {runs[False]} |\n"
        f"| on (default) | {on:.1f} | {runs[True]} |\n\n"
        f"Overhead: **{on / off - 1:+.1%}** of the untracked wall time (on / off = {on / off:.3f}). "
        f"Store after one tracked run: **{statistics.median(sizes) / 2**20:.1f} MiB** "
        "(`data/09_tracking`: the SQLite database and the artifacts).\n"
    )
    print(text)
    if args.write:
        doc = DOC.read_text()
        start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        DOC.write_text(doc[:start] + "\n" + text + doc[end:])


if __name__ == "__main__":
    main()
