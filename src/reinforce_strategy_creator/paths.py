"""Where the project lives, and paths as reports should show them.

Reports, registry entries and status files are read long after a run, often from another
checkout or after the project folder has moved. A path stored as ``/home/me/proj/data/x``
turns false the moment the folder moves, so everything written for people or scripts stores
paths relative to the project root (the nearest ancestor holding ``pyproject.toml``) and
resolves them back with :func:`resolve_in_project`. Paths outside the project stay absolute:
they are not the project's to relocate.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

MARKER = "pyproject.toml"


def project_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) that holds
    ``pyproject.toml``; ``None`` when there is none."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / MARKER).is_file():
            return folder
    return None


def display_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """``path`` relative to the project root (POSIX separators) when it lies inside the project,
    else absolute. ``root`` defaults to the project holding ``path`` (or the working directory)."""
    p = Path(path)
    absolute = p if p.is_absolute() else Path.cwd() / p
    absolute = Path(os.path.normpath(absolute))
    base = Path(root).resolve() if root is not None else (project_root(absolute.parent) or project_root())
    if base is not None:
        try:
            return absolute.relative_to(base).as_posix()
        except ValueError:
            pass
    return str(absolute)


def resolve_in_project(path: str | os.PathLike, anchor: str | os.PathLike | None = None) -> Path:
    """A stored path made usable again: absolute paths unchanged, relative ones resolved from the
    project root found above ``anchor`` (a file or folder inside the project; default: the
    working directory)."""
    p = Path(path)
    if p.is_absolute():
        return p
    root = project_root(anchor)
    return (root / p) if root is not None else p


def copy_project(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    envs: Sequence[str] = ("base",),
    raw: bool = True,
    notebooks: bool = False,
) -> Path:
    """A throw-away copy at ``dest`` of the project checked out at ``source``, as a fresh clone
    has it: ``pyproject.toml``, the ``conf`` environments ``envs`` and ``conf/logging.yml``, an
    empty ``conf/local``, ``src``, and (``raw``) the embedded raw files ``data/01_raw``
    (``notebooks``: the notebooks too). ``kedro`` run in the copy imports the package from the
    copy's ``src`` (Kedro's project bootstrap puts it first on ``sys.path``). For tests and
    benchmarks that run the real CLI without touching the checkout."""
    source, dest = Path(source), Path(dest)
    dest.mkdir(parents=True)
    shutil.copy(source / MARKER, dest)
    for env in envs:
        shutil.copytree(source / "conf" / env, dest / "conf" / env)
    shutil.copy(source / "conf" / "logging.yml", dest / "conf" / "logging.yml")
    (dest / "conf" / "local").mkdir()
    shutil.copytree(source / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    if raw:
        shutil.copytree(source / "data" / "01_raw", dest / "data" / "01_raw")
    if notebooks:
        shutil.copytree(
            source / "notebooks", dest / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints")
        )
    return dest
