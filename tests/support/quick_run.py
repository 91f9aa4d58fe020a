"""The README's flow on throw-away copies of the project, made once per test session
(tests/conftest.py), with the quick environment's training budgets.

:func:`build_quick_run` is what a new user does: ``make run`` (``kedro run --pipelines
full_cycle``, the default walk-forward cycle), then the README's registry and paper-trading
commands: ``kedro models list``, ``kedro models promote <id>`` for the champion the run
registered (with ``--force --reason`` when its verdict failed, as the README says) and
``kedro run --pipelines deployment``. Nothing else is run: the notebooks and the end-to-end
tests read what this flow leaves. :func:`build_portfolio_run` is the README's portfolio
command, ``kedro run --pipelines portfolio --env quick --params
data_ingestion.filepath=<the 20-stock universe>`` (one fold), in its own copy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.project import copy_project, kedro

#: The README's quick portfolio run reads the 20-stock universe (the `quick` env is the single-asset file's).
UNIVERSE = "data_ingestion.filepath=data/01_raw/sp500_20_stocks_close_1990_2022.csv"


def _kedro(root: Path, *args: str) -> str:
    result = kedro(root, *args, KEDRO_ENV="quick", MPLBACKEND="Agg")
    assert result.returncode == 0, (
        f"kedro {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def registry_entries(root: Path, *options: str) -> list[dict]:
    """``kedro models list --json`` in ``root`` (``options``: e.g. ``--status production``)."""
    out = _kedro(root, "models", "list", "--json", "--env", "quick", *options)
    start = re.search(r"^\[(\s*$|\]|\{)", out, re.MULTILINE)  # skip Kedro's logging banner on stdout
    assert start, f"kedro models list --json printed no JSON list:\n{out[-2000:]}"
    return json.loads(out[start.start() :])


def build_quick_run(root: Path) -> Path:
    """Copy the project (conf base + quick, raw data, notebooks) to ``root`` and run the README's
    flow in it: the full cycle, then promote its champion and trade the paper bars."""
    copy_project(root, envs=("base", "quick"), notebooks=True)
    _kedro(root, "run", "--pipelines", "full_cycle", "--env", "quick")
    entries = registry_entries(root)
    champion = json.loads((root / "data/07_model_output/champion.json").read_text())
    entry = next(
        e
        for e in entries
        if e["agent"] == champion["agent"]
        and e["seed"] == champion["seed"]
        and e["version"] == champion["policy_version"]
    )
    if entry["status"] != "production":
        force = [] if champion["verdict_passed"] else ["--force", "--reason", "ci: the README's flow"]
        _kedro(root, "models", "promote", entry["entry_id"], *force, "--env", "quick")
    _kedro(root, "run", "--pipelines", "deployment", "--env", "quick")
    return root


def build_portfolio_run(root: Path) -> Path:
    """Copy the project to ``root`` and run the README's quick portfolio cycle in it (one fold)."""
    copy_project(root, envs=("base", "quick"), notebooks=True)
    _kedro(
        root,
        "run",
        "--pipelines",
        "portfolio",
        "--env",
        "quick",
        "--params",
        f"walk_forward.folds=1,{UNIVERSE}",
    )
    return root
