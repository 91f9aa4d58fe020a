"""Fixtures for the CLI tests: a throw-away Kedro project.

Synthetic bars and the artificial policy are in ``tests/support/paper.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.project import PROJECT_ROOT


@pytest.fixture
def tmp_project(tmp_path, monkeypatch) -> Path:
    """A minimal Kedro project (pyproject + the deployment/environment conf) in tmp."""
    root = tmp_path / "proj"
    (root / "conf" / "base").mkdir(parents=True)
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    for name in (
        "parameters_deployment.yml",
        "parameters_environment.yml",
        "catalog_deployment.yml",
        "globals.yml",
    ):
        shutil.copy(PROJECT_ROOT / "conf" / "base" / name, root / "conf" / "base" / name)
    monkeypatch.chdir(root)
    return root
