"""Kedro datasets over the deployment library: the model registry and the paper account.

``ModelRegistryDataset`` (``filepath``: the registry ``.jsonl``)
    *load* resolves the registry's production entry to its policy artifact (the version the
    evaluation recorded, read through :class:`PolicyArtifactDataset`, so JSON + safetensors
    only) and returns a :class:`~reinforce_strategy_creator.deployment.session.ProductionModel`
    (``available`` is false when nothing is in production). *save* takes a registration
    request (``deployment.registry.registration_request``) and applies it idempotently.
    One name for both directions makes Kedro run registration before paper trading.

``PaperAccountDataset`` (``filepath``: the account folder)
    *load* returns a :class:`~reinforce_strategy_creator.deployment.state.StagedAccount`
    holding the committed state (``None`` for a new account); *save* publishes a staged batch
    with the crash-safe commit of :class:`AccountStore` (nothing is written when nothing
    changed; a concurrent writer makes it refuse).

``GateDecisionLogDataset`` (``filepath``: the registry ``.jsonl``, the same file)
    *load* returns every evaluation gate decision recorded in the registry, oldest first
    (``[]`` when the file does not exist); *save* records one decision
    (:meth:`ModelRegistry.record_gate_decision`: required ``data_fingerprint``, ``window``,
    ``config_sha256``, ``passed``; appended under the registry's lock).

Why custom datasets: these keep the nodes pure (no file access in nodes) while the
registry and account keep their append-only, fsync'd, lock-protected formats.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset
from kedro.io.core import DatasetError, Version

from ..deployment.registry import ModelRegistry
from ..deployment.session import ProductionModel
from ..deployment.state import AccountStore, StagedAccount

logger = logging.getLogger(__name__)


def _resolve_artifact(artifact_path: str, registry_path: Path) -> Path:
    """An artifact path as recorded (relative to the project root, like every catalog path).

    Kedro hands datasets absolute paths, but the registry records the champion's path as the
    catalog wrote it, relative to the project root. Resolve it from the project that holds the
    registry (the nearest ancestor with a ``pyproject.toml``), not from the working directory,
    so a notebook under ``notebooks/`` loads the same artifact as ``kedro run``.
    """
    path = Path(artifact_path)
    if path.is_absolute():
        return path
    for parent in Path(registry_path).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent / path
    return path


class ModelRegistryDataset(AbstractDataset[dict, ProductionModel]):
    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> ProductionModel:
        from .policy_artifact import PolicyArtifactDataset

        entry = ModelRegistry(self._filepath).production()
        if entry is None:
            return ProductionModel(None, None, None, str(self._filepath))
        if not entry.artifact_path:
            raise DatasetError(
                f"registry {self._filepath}: production entry {entry.entry_id} has no artifact "
                "path; register champions through the deployment pipeline (it records the "
                "artifact) or `kedro models rollback` to a usable entry.")
        artifact = PolicyArtifactDataset(filepath=str(_resolve_artifact(entry.artifact_path, self._filepath)),
                                         version=Version(entry.version, None))
        try:
            bundle = artifact.load()
        except DatasetError as exc:
            raise DatasetError(
                f"registry {self._filepath}: production entry {entry.entry_id} points to "
                f"{entry.artifact_path} version {entry.version}, which cannot be loaded ({exc}). "
                "Restore the artifact or `kedro models rollback --reason ...`.") from exc
        return ProductionModel(entry.entry_id, bundle, entry.seed, str(self._filepath),
                               artifact=f"{entry.artifact_path}@{entry.version}",
                               version=entry.version)

    def save(self, data: dict) -> None:
        outcome = ModelRegistry(self._filepath).apply_registration(data)
        logger.info("Model registry %s: %s", self._filepath, outcome)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class GateDecisionLogDataset(AbstractDataset[dict, list]):
    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> list[dict[str, Any]]:
        return ModelRegistry(self._filepath).gate_decisions()

    def save(self, data: dict) -> None:
        event = ModelRegistry(self._filepath).record_gate_decision(data)
        logger.info("Gate decision recorded in %s: passed=%s on %s .. %s", self._filepath,
                    event["passed"], event["window"]["start"], event["window"]["end"])

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class PaperAccountDataset(AbstractDataset[StagedAccount, StagedAccount]):
    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> StagedAccount:
        store = AccountStore(self._filepath)
        if not store.exists():
            return StagedAccount(self._filepath, None)
        state = store.load()
        history = {name: store.read_log(name, state) for name in ("equity", "trades")}
        return StagedAccount(self._filepath, state, history)

    def save(self, data: StagedAccount) -> None:
        if not isinstance(data, StagedAccount):
            raise DatasetError(f"PaperAccountDataset at {self._filepath} expects a StagedAccount, "
                               f"got {type(data).__name__}.")
        if data.folder.resolve() != self._filepath.resolve():
            raise DatasetError(
                f"PaperAccountDataset at {self._filepath} was given the account of "
                f"{data.folder}; deployment.account and deployment.account_update must have the "
                "same filepath in catalog_deployment.yml.")
        AccountStore(self._filepath).commit_batch(data)

    def _exists(self) -> bool:
        return (self._filepath / "state.json").exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
