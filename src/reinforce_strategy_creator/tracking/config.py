"""Where tracked runs go, read from kedro-mlflow's ``mlflow.yml`` the way kedro-mlflow reads it.

The hook of a ``kedro run`` gets the same answer from kedro-mlflow itself; ``kedro models
promote / rollback / sync`` have no Kedro session and read it here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from .store import URI_SETTING, TrackingError

DEFAULT_EXPERIMENT = "reinforce_strategy_creator"


def _uri(value: str | None, project_path: Path) -> str | None:
    """A relative local path becomes a ``file://`` URI under the project, as kedro-mlflow does
    (a ``sqlite:///relative.db`` stays relative to the project root, where Kedro runs)."""
    if value is None or "://" in value or value.startswith("sqlite:"):
        return value
    return (project_path / value).resolve().as_uri()


def prepare_store(uri: str, project_path: str | Path) -> None:
    """Create the folder of an embedded SQLite store (``data/09_tracking``) when it is missing."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        (path if path.is_absolute() else Path(project_path) / path).parent.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class TrackingSetup:
    uri: str
    registry_uri: str | None
    experiment: str
    artifact_location: str | None
    long_params: str = "tag"

    @property
    def model_name(self) -> str:
        """The MLflow registered model that mirrors the project's registry."""
        return self.experiment

    @property
    def registry_artifacts(self) -> str | None:
        """Where the registry mirror's model files go (beside the runs' artifacts)."""
        return f"{self.artifact_location.rstrip('/')}/registry" if self.artifact_location else None

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.registry_uri)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any] | None, project_path: str | Path) -> TrackingSetup:
        """The setup of ``mlflow.yml`` (``conf``); the tracking URI falls back on
        ``MLFLOW_TRACKING_URI`` when the file leaves it null."""
        root = Path(project_path)
        conf = conf or {}
        server, tracking = conf.get("server") or {}, conf.get("tracking") or {}
        uri = server.get("mlflow_tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise TrackingError(
                f"{URI_SETTING} is not set: name a store (sqlite:///data/09_tracking/mlflow.db is the "
                "project's default) or a tracking server, or run without tracking: "
                "--params tracking.enabled=false."
            )
        experiment = tracking.get("experiment") or {}
        created = experiment.get("create_experiment_kwargs") or {}
        return cls(
            uri=_uri(uri, root),
            registry_uri=_uri(server.get("mlflow_registry_uri"), root),
            experiment=experiment.get("name") or DEFAULT_EXPERIMENT,
            artifact_location=_uri(created.get("artifact_location"), root),
            long_params=(tracking.get("params") or {}).get("long_params_strategy", "tag"),
        )
