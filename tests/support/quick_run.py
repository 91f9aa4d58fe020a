"""The CI flow on a throw-away copy of the project, made once per test session (tests/conftest.py).

``kedro run --env quick --params evaluation.scheme=single_split`` (``full_cycle`` on the single
split, tiny training budgets: notebooks 01-03 read its artifacts) and the ``walk_forward`` stage
with two folds (notebook 04) and the ``portfolio`` stage with one fold (notebook 05); the
default scheme's ``full_cycle`` is run by
``tests/pipelines/walk_forward/test_pipeline.py`` and by ``make e2e``. If the registry
then has no production model, the README's override: the champion is promoted by hand
(``kedro models promote <id> --force --reason "ci notebook run"``) and
``kedro run --env quick --pipelines deployment`` trades the paper bars.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.project import copy_project, kedro


def _kedro(root: Path, *args: str) -> str:
    result = kedro(root, *args, KEDRO_ENV="quick", MPLBACKEND="Agg")
    assert result.returncode == 0, (
        f"kedro {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def registry_entries(root: Path) -> list[dict]:
    """``kedro models list --json`` in ``root``."""
    out = _kedro(root, "models", "list", "--json", "--env", "quick")
    start = re.search(r"^\[(\s*$|\]|\{)", out, re.MULTILINE)  # skip Kedro's logging banner on stdout
    assert start, f"kedro models list --json printed no JSON list:\n{out[-2000:]}"
    return json.loads(out[start.start() :])


def build_quick_run(root: Path) -> Path:
    """Copy the project (conf base + quick, raw data, notebooks) to ``root`` and run the CI flow."""
    copy_project(root, envs=("base", "quick"), notebooks=True)
    # the single split: notebooks 01-03 read its features, training histories and evaluation
    _kedro(root, "run", "--env", "quick", "--params", "evaluation.scheme=single_split")
    # the walk-forward stage on the same data, for notebooks/04 (two folds keep it short)
    _kedro(root, "run", "--env", "quick", "--pipelines", "walk_forward", "--params", "walk_forward.folds=2")
    # the portfolio stage on the 20-stock universe, for notebooks/05 (one fold and the deployment fold)
    _kedro(root, "run", "--env", "quick", "--pipelines", "portfolio", "--params", "walk_forward.folds=1")
    entries = registry_entries(root)
    assert entries, "the quick run registered no model"
    if not any(e["status"] == "production" for e in entries):
        champion = json.loads((root / "data/07_model_output/champion.json").read_text())
        entry = next(
            e
            for e in entries
            if e["agent"] == champion["agent"]
            and e["seed"] == champion["seed"]
            and e["version"] == champion["policy_version"]
        )
        _kedro(
            root,
            "models",
            "promote",
            entry["entry_id"],
            "--force",
            "--reason",
            "ci notebook run",
            "--env",
            "quick",
        )
        _kedro(root, "run", "--env", "quick", "--pipelines", "deployment")
    return root
