"""Start-up time of the project's light commands: ``kedro --help``, ``kedro models list --json`` and
``kedro paper status --json``, each a fresh process, in a throw-away copy of the project (a
registry with two entries, a production and a shadow paper account of 60 bars, so that the
listing and the reconciliation do their real work). Peers in the same run: ``python -c "pass"``
(the interpreter's own start) and ``python -c "import torch"`` (what a command pays if it imports
torch). Each command runs ``repeats`` times, interleaved; the table gives the median and the range.

Usage: ``python benchmarks/bench_cli.py [--repeats N] [--project CHECKOUT] [--write]``.
``--project`` times another checkout's code (default: this one), e.g. an older commit exported
with ``git archive``; ``--write`` replaces the generated table of docs/benchmarks.md's "Command-line
start-up" section (the before/after paragraph above it is written by hand).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from reinforce_strategy_creator.cli import load_deployment_params  # noqa: E402
from reinforce_strategy_creator.deployment import AccountStore, ModelRegistry, PaperAccount  # noqa: E402
from reinforce_strategy_creator.paths import copy_project  # noqa: E402

ENV = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
ENV.pop("PYTHONPATH", None)  # the copy's own src, as a user's shell has it
KEDRO = str(Path(sys.executable).with_name("kedro"))
COMMANDS = {
    "kedro --help": [KEDRO, "--help"],
    "kedro models list --json": [KEDRO, "models", "list", "--json"],
    "kedro paper status --json": [KEDRO, "paper", "status", "--json"],
    'python -c "import torch" (peer)': [sys.executable, "-c", "import torch"],
    'python -c "pass" (baseline)': [sys.executable, "-c", "pass"],
}
BEGIN, END = "<!-- BEGIN GENERATED: bench_cli -->", "<!-- END GENERATED: bench_cli -->"


def _prices(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    idx = pd.date_range("2020-01-01", periods=n, freq="B", name="date")
    return pd.DataFrame({"Open": close * np.exp(rng.normal(0, 0.003, n)), "Close": close}, index=idx)


def make_world(root: Path) -> None:
    """Two registered models (one promoted) and both paper accounts trading 60 bars."""
    setup = load_deployment_params(project_path=root)
    registry = ModelRegistry(setup.registry_path)
    production = registry.register(
        agent="ppo",
        version="v1",
        seed=0,
        metrics={"validation_sharpe": 1.0, "test_sharpe": 0.5},
        verdict={"passed": True},
    )
    registry.register(
        agent="dqn", version="v2", seed=0, metrics={"validation_sharpe": 0.2}, verdict={"passed": False}
    )
    registry.promote(production)
    for folder in (setup.account_dir, setup.shadow_account_dir):
        broker = PaperAccount.instrument(
            AccountStore(folder), initial_capital=setup.initial_capital, costs=setup.costs, limits=setup.risk
        )
        broker.run(_prices(60), lambda history, state: 0.5 if len(history) % 2 else -0.2, model_id=production)


def time_commands(root: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds of each command, ``repeats`` times, interleaved; a command that fails stops the run."""
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, argv in COMMANDS.items():
            t = time.perf_counter()
            run = subprocess.run(argv, cwd=root, env=ENV, capture_output=True, text=True, check=False)
            times[name].append(time.perf_counter() - t)
            if run.returncode != 0:
                raise SystemExit(f"{name} failed in {root}:\n{run.stderr[-2000:]}")
    return times


def table(times: dict[str, list[float]], project: Path, load: tuple[float, float]) -> str:
    code = "this checkout" if project == ROOT else f"the checkout at {project}"
    cpu = platform.processor() or platform.machine()
    lines = [
        f"`python benchmarks/bench_cli.py --write` (part of `make bench`), {dt.date.today().isoformat()}, "
        f"the code of {code}, {cpu}, "
        f"{os.cpu_count()} CPU cores shared with other developers, load average {load[0]:.1f} before / "
        f"{load[1]:.1f} after, Python {platform.python_version()}, torch {torch.__version__}; "
        f"{len(next(iter(times.values())))} runs of each command, interleaved.",
        "",
        "| command (fresh process) | seconds, median | min – max |",
        "| --- | ---: | ---: |",
        *[
            f"| `{name}` | {statistics.median(xs):.2f} | {min(xs):.2f} – {max(xs):.2f} |"
            for name, xs in times.items()
        ],
    ]
    return "\n".join(lines)


def write_table(text: str) -> None:
    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(
            f"{DOC}: no {BEGIN} ... {END} markers; add the 'Command-line start-up' section first"
        )
    head, rest = doc.split(BEGIN, 1)
    DOC.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--project", type=Path, default=ROOT, help="the checkout whose code is timed")
    ap.add_argument("--write", action="store_true", help="replace the generated table in docs/benchmarks.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_project(args.project.resolve(), Path(tmp) / "project", raw=False)
        make_world(root)
        load0 = os.getloadavg()
        times = time_commands(root, args.repeats)
        text = table(times, args.project.resolve(), (load0[0], os.getloadavg()[0]))
    print(text)
    if args.write:
        write_table(text)


if __name__ == "__main__":
    main()
