"""Every notebook under ``notebooks/`` runs on what the README's flow leaves, or stops at once.

The flow, in a throw-away copy of the project with the quick environment's budgets
(tests/support/quick_run.py, the session's shared ``quick_run``): ``kedro run --pipelines
full_cycle``, ``kedro models promote <id>`` for its champion (``--force --reason`` when its
verdict failed, as the README says) and ``kedro run --pipelines deployment``; nothing else.
Each notebook is executed with nbclient on the ``python3`` kernel (this venv's interpreter)
from the copy's ``notebooks/`` folder, where ``%load_ext kedro.ipython`` finds the project.

A notebook that needs another run (``NEEDS_ANOTHER_RUN``) names it in its first cell and, on
the README's flow, stops at its first check with that command and no traceback; on the copy
where that run was made (``portfolio_run``: ``kedro run --pipelines portfolio --env quick``) it
runs top to bottom. The notebooks themselves never promote or trade.

Committed notebooks must have their outputs cleared (checked fast, without running them).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from reinforce_strategy_creator.notebook import ArtifactsMissing, require
from tests.support.project import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
#: notebook -> (the run it needs, the command its first cell names)
NEEDS_ANOTHER_RUN = {"05_portfolio": ("portfolio_run", "kedro run --pipelines full_cycle --env portfolio")}
README_FLOW = "kedro run --pipelines full_cycle"
ENV = {
    "KEDRO_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "COLUMNS": "200",
    "KEDRO_ENV": "quick",
}


def _execute(root: Path, name: str) -> tuple[nbformat.NotebookNode, Exception | None, list[int]]:
    """Run notebook ``name`` of the project copy ``root`` top to bottom; the executed notebook,
    the error that stopped it (``None`` if every cell ran) and the indexes of the cells that
    were sent to the kernel, in order."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(root / "notebooks" / name, as_version=4)
    started: list[int] = []
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(root / "notebooks")}},
        on_cell_execute=lambda cell, cell_index: started.append(cell_index),
    )
    saved = dict(os.environ)
    os.environ.update(ENV)  # the kernel inherits this process's environment
    try:
        client.execute()
    except CellExecutionError as exc:
        return notebook, exc, started
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return notebook, None, started


def _code(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_and_checking_what_they_read_first(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name} cell {i} has outputs: clear them"
            )
    sources = _code(path)
    assert sources and sources[0].startswith("%load_ext kedro.ipython"), (
        f"{path.name} must start with %load_ext kedro.ipython"
    )
    command = NEEDS_ANOTHER_RUN.get(path.stem, (None, README_FLOW))[1]
    assert "require(" in sources[1] and f'"{command}"' in sources[1], (
        f"{path.name}: the first cell after %load_ext must require its datasets, naming `{command}`"
    )
    assert command in nb.cells[0].source, f"{path.name}: the first cell must name `{command}`"
    assert any("catalog.load(" in s for s in sources), f"{path.name} must read artifacts through catalog.load"


@pytest.mark.parametrize("exists", [True, False])
def test_require_names_every_missing_dataset_and_the_command(exists):
    class Catalog:
        def exists(self, name: str) -> bool:
            return exists or name == "there"

    if exists:
        require(Catalog(), ["a", "b"], "kedro run")
        return
    with pytest.raises(ArtifactsMissing) as caught:
        require(Catalog(), ["a", "there", "b"], "kedro run --pipelines x")
    message = str(caught.value)
    assert "a, b" in message and "there" not in message and "`kedro run --pipelines x`" in message
    assert caught.value._render_traceback_() == [f"ArtifactsMissing: {message}"]  # IPython: no traceback


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_on_the_readme_flow(quick_run, path):
    """Top to bottom on the README's flow; a notebook that needs another run stops at its first
    check (the cell after %load_ext), naming the command, and runs no cell after it."""
    notebook, error, started = _execute(quick_run, path.name)
    code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    if path.stem not in NEEDS_ANOTHER_RUN:
        assert error is None, f"{path.name} failed on the README's flow: {error!r}"
        assert started == code
        outputs = [o for i in code for o in notebook.cells[i].outputs]
        assert any(o.get("output_type") in {"display_data", "execute_result"} for o in outputs)
        return
    command = NEEDS_ANOTHER_RUN[path.stem][1]
    assert error is not None and error.ename == "ArtifactsMissing", f"{path.name}: {error!r}"
    assert f"`{command}`" in error.evalue and "Traceback" not in str(error)
    assert started == code[:2], f"{path.name} ran cells {started}, not up to its first check {code[1]}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NEEDS_ANOTHER_RUN), ids=str)
def test_notebook_after_the_run_it_names(request, name):
    """A notebook that needs another run runs top to bottom once that run was made."""
    root = request.getfixturevalue(NEEDS_ANOTHER_RUN[name][0])
    notebook, error, _ = _execute(root, f"{name}.ipynb")
    assert error is None, f"{name} failed after its run: {error!r}"
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert any(o.get("output_type") in {"display_data", "execute_result"} for o in outputs)
