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

import os
import sys
from pathlib import Path

import nbformat
import pytest

from tests.support.project import PROJECT_ROOT

KEDRO = Path(sys.executable).with_name("kedro")
NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
ENV = {
    **os.environ,
    "KEDRO_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "COLUMNS": "200",
    "KEDRO_ENV": "quick",
    "MPLBACKEND": "Agg",
}


def test_the_three_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_data_and_features", "02_training_and_evaluation", "03_paper_account"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name} cell {i} has outputs: clear them"
            )
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert sources and sources[0].startswith("%load_ext kedro.ipython"), (
        f"{path.name} must start with %load_ext kedro.ipython"
    )
    assert any("catalog.load(" in s for s in sources), f"{path.name} must read artifacts through catalog.load"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(quick_run, path):
    from nbclient import NotebookClient

    notebook = nbformat.read(quick_run / "notebooks" / path.name, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(quick_run / "notebooks")}},
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
