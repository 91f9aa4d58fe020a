"""An empty MLflow store (SQLite), made once per worker and copied for each test: creating one
runs MLflow's schema migrations, about two seconds."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def empty_store(_empty_store) -> Callable[[Path], Path]:
    """``empty_store(path)``: an empty MLflow SQLite store at ``path``; returns ``path``."""

    def _make(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_empty_store, path)
        return path

    return _make
