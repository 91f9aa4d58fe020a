"""Peak resident memory (RSS) of the driver and of each worker process of a ``kedro run``.

Runs the command given after ``--`` (default: the default ``full_cycle`` on the ``processes``
backend with the fold store off, so every fold trains), samples the RSS of the driver and of
every descendant process every 0.2 s with psutil, and prints the peak of each, the wall time
and the command. Hand-written: no library reports per-process peaks of a process tree.

    python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py -- kedro run --pipelines full_cycle --params compute.backend=dask
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [
    str(Path(sys.executable).with_name("kedro")),
    "run",
    "--pipelines",
    "full_cycle",
    "--params",
    "walk_forward.reuse_folds=false",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = [c for c in a.cmd if c != "--"] or DEFAULT
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = psutil.Process(proc.pid)
    peaks: dict[int, tuple[str, int]] = {}
    while proc.poll() is None:
        try:
            tree = [driver, *driver.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in tree:
            try:
                rss = p.memory_info().rss
                name = " ".join(p.cmdline()[:3])[-80:]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if rss > peaks.get(p.pid, ("", 0))[1]:
                peaks[p.pid] = (name, rss)
        time.sleep(a.interval)
    wall = time.perf_counter() - t0
    mib = 1024 * 1024
    driver_peak = peaks.pop(proc.pid, ("driver", 0))[1] / mib
    workers = sorted(((rss / mib, name) for name, rss in peaks.values()), reverse=True)
    out = {
        "command": " ".join(cmd[1:] if cmd == DEFAULT else cmd),
        "exit_status": proc.returncode,
        "wall_s": round(wall, 1),
        "driver_peak_rss_mib": round(driver_peak),
        "worker_peak_rss_mib": [round(r) for r, _ in workers if r > 50],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    print(json.dumps(out, indent=2))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
