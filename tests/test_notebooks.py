"""Every notebook under ``notebooks/`` runs top to bottom on the artifacts of a real run.

The CI flow, in a throw-away copy of the project: ``kedro run --env quick`` (the whole
``full_cycle`` with tiny training budgets; the session's shared ``quick_run`` fixture); if
the registry then has no production model,
the champion is promoted the documented way (``kedro models promote <id> --force --reason
"ci notebook run"``) and ``kedro run --env quick --pipelines deployment`` trades the paper
bars. Each notebook is then executed with nbclient on the ``python3`` kernel (this venv's
interpreter) from the copy's ``notebooks/`` folder, where ``%load_ext kedro.ipython`` finds
the project; an error in any cell fails the test. The notebooks themselves never promote.

Committed notebooks must have their outputs cleared (checked fast, without running them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.support.project import PROJECT_ROOT

KEDRO = Path(sys.executable).with_name("kedro")
NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
ENV = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "COLUMNS": "200",
       "KEDRO_ENV": "quick", "MPLBACKEND": "Agg"}


def test_the_three_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_data_and_features", "02_training_and_evaluation", "03_paper_account"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} cell {i} has outputs: clear them"
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert sources and sources[0].startswith("%load_ext kedro.ipython"), f"{path.name} must start with %load_ext kedro.ipython"
    assert any("catalog.load(" in s for s in sources), f"{path.name} must read artifacts through catalog.load"


def _kedro(root: Path, *args: str) -> str:
    result = subprocess.run([str(KEDRO), *args], cwd=root, env=ENV, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"kedro {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _entries(root: Path) -> list[dict]:
    out = _kedro(root, "models", "list", "--json", "--env", "quick")
    start = re.search(r"^\[(\s*$|\]|\{)", out, re.MULTILINE)  # skip Kedro's logging banner on stdout
    assert start, f"kedro models list --json printed no JSON list:\n{out[-2000:]}"
    return json.loads(out[start.start():])


@pytest.fixture(scope="module")
def quick_project(quick_run) -> Path:
    """The shared quick run (tests/conftest.py), then the README's override when the gate promoted
    nothing: promote the champion by hand and trade the paper bars."""
    root = quick_run
    entries = _entries(root)
    assert entries, "the quick run registered no model"
    if not any(e["status"] == "production" for e in entries):
        champion = json.loads((root / "data/07_model_output/champion.json").read_text())
        entry = next(e for e in entries if e["agent"] == champion["agent"] and e["seed"] == champion["seed"]
                     and e["version"] == champion["policy_version"])
        _kedro(root, "models", "promote", entry["entry_id"], "--force", "--reason", "ci notebook run", "--env", "quick")
        _kedro(root, "run", "--env", "quick", "--pipelines", "deployment")
    return root


@pytest.mark.slow
@pytest.mark.xdist_group("quick_run")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(quick_project, path):
    from nbclient import NotebookClient

    notebook = nbformat.read(quick_project / "notebooks" / path.name, as_version=4)
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=600,
        resources={"metadata": {"path": str(quick_project / "notebooks")}},
    )
    saved = dict(os.environ)
    os.environ.update(ENV)  # the kernel inherits this process's environment
    try:
        client.execute()  # raises CellExecutionError naming the cell on any error
    finally:
        os.environ.clear()
        os.environ.update(saved)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") in {"display_data", "execute_result"} for o in outputs)
