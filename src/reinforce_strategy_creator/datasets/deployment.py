"""Kedro datasets over the deployment library: the model registry and the paper accounts.

What: :class:`ModelRegistryDataset` (a registry entry with its policy, and registration),
:class:`GateDecisionLogDataset` (the evaluation gate's decisions in the same registry file),
:class:`TuningStudyLogDataset` (the hyperparameter studies recorded there)
and :class:`PaperAccountDataset` (a staged paper account, published with one crash-safe commit).

Why: they keep the nodes pure (no file access in nodes) while the registry and the accounts
keep their append-only, fsync'd, lock-protected formats. See docs/paper_trading.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset
from kedro.io.core import DatasetError

from ..artifacts import load_policy_bundle
from ..deployment.registry import ModelRegistry
from ..deployment.session import PRODUCTION, SHADOW, ProductionModel
from ..deployment.state import AccountStore, StagedAccount
from ..errors import InputError
from ..paths import display_path, project_root

#: the committed logs a loaded account carries (feed checks, the report and its last session)
HISTORY_LOGS = ("equity", "trades", "events")

logger = logging.getLogger(__name__)


class ModelRegistryDataset(AbstractDataset[dict, ProductionModel]):
    """The registry file (``filepath``, a ``.jsonl``) seen as one model.

    *load*: with ``select: production`` (default) the registry's production entry, with
    ``select: newest`` the most recently registered entry whatever its verdict (the shadow
    account's champion), resolved to its policy artifact (the version the evaluation recorded,
    loaded only after every file matches the SHA-256 the registry recorded at registration, JSON
    + safetensors only), as a
    :class:`~reinforce_strategy_creator.deployment.session.ProductionModel` (``available`` is
    false when there is none). *save*: applies a registration request
    (``deployment.registry.registration_request``) idempotently; an absolute artifact path
    inside the project is stored relative to its root. One name for both directions makes
    Kedro run registration before paper trading.
    """

    SELECT = ("production", "newest")

    def __init__(
        self, filepath: str, select: str = "production", metadata: dict[str, Any] | None = None
    ) -> None:
        if select not in self.SELECT:
            raise DatasetError(
                f"ModelRegistryDataset at {filepath}: select={select!r}; use one of "
                f"{list(self.SELECT)} (conf/base/catalog_deployment.yml)."
            )
        self._filepath = Path(filepath)
        self._select = select
        self.metadata = metadata

    def load(self) -> ProductionModel:
        registry = ModelRegistry(self._filepath)
        role = PRODUCTION if self._select == "production" else SHADOW
        entry = registry.production() if self._select == "production" else registry.newest()
        where = display_path(self._filepath)
        if entry is None:
            return ProductionModel(None, None, None, str(self._filepath), role=role)
        what = "production entry" if role == PRODUCTION else "newest registered entry (shadow account)"
        fix = (
            "`kedro models rollback --reason ...`"
            if role == PRODUCTION
            else "register a newer champion (re-run training and evaluation)"
        )
        if not entry.artifact_path:
            raise DatasetError(
                f"registry {where}: {what} {entry.entry_id} has no artifact path; register "
                f"champions through the deployment pipeline (it records the artifact), or {fix}."
            )
        try:
            # JSON and safetensors only, after the files match the SHA-256 recorded at registration
            bundle = load_policy_bundle(
                registry.artifact_folder(entry),
                version=entry.version,
                expected_sha256=entry.artifact_sha256,
                recorded_in=registry.recorded_in(entry),
                fix=registry.artifact_fix(entry),
            )
            bundle.filepath = entry.artifact_path
        except InputError as exc:
            raise DatasetError(
                f"registry {where}: {what} {entry.entry_id} points to "
                f"{entry.artifact_path} version {entry.version}, which cannot be used: {exc} "
                f"Otherwise: {fix}."
            ) from exc
        return ProductionModel(
            entry.entry_id,
            bundle,
            entry.seed,
            str(self._filepath),
            artifact=f"{entry.artifact_path}@{entry.version}",
            version=entry.version,
            role=role,
            verdict_passed=entry.passed,
            status=entry.status,
            universe=entry.universe,
        )

    def save(self, data: dict) -> None:
        """Apply a registration request (idempotent: the second of the two registry views
        saved by ``register_champion`` finds the champion registered and changes nothing)."""
        reg = (data or {}).get("register")
        if reg and reg.get("artifact_path") and Path(reg["artifact_path"]).is_absolute():
            # stored relative to the project root, so it stays true when the project moves
            root = project_root(self._filepath.parent)
            data = {
                **data,
                "register": {
                    **reg,
                    "artifact_path": display_path(reg["artifact_path"], root)
                    if root
                    else reg["artifact_path"],
                },
            }
        outcome = ModelRegistry(self._filepath).apply_registration(data)
        level = (
            logging.DEBUG
            if outcome.get("action") == "already_registered" and self._select != "production"
            else logging.INFO
        )
        logger.log(level, "Model registry %s: %s", display_path(self._filepath), outcome)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "select": self._select}


class GateDecisionLogDataset(AbstractDataset[dict, list]):
    """The evaluation gate's decisions in the registry file (``filepath``, the same ``.jsonl``).

    *load*: every recorded decision, oldest first (``[]`` when the file does not exist).
    *save*: records one decision (:meth:`ModelRegistry.record_gate_decision`: required
    ``data_fingerprint``, ``window``, ``config_sha256``, ``passed``; appended under the
    registry's lock).
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> list[dict[str, Any]]:
        return ModelRegistry(self._filepath).gate_decisions()

    def save(self, data: dict) -> None:
        event = ModelRegistry(self._filepath).record_gate_decision(data)
        logger.info(
            "Gate decision recorded in %s: passed=%s on %s .. %s",
            self._filepath,
            event["passed"],
            event["window"]["start"],
            event["window"]["end"],
        )

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class TuningStudyLogDataset(AbstractDataset[dict, list]):
    """The hyperparameter studies recorded in the registry file (``filepath``, the same ``.jsonl``).

    *load*: every recorded ``tuning_study`` event, oldest first (``[]`` when the file does not
    exist); the walk-forward judge counts their trials. *save*: records one study
    (:meth:`ModelRegistry.record_tuning_study`, appended under the registry's lock).
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> list[dict[str, Any]]:
        return ModelRegistry(self._filepath).tuning_studies()

    def save(self, data: dict) -> None:
        event = ModelRegistry(self._filepath).record_tuning_study(data)
        logger.info(
            "Tuning study %s recorded in %s: %d trials on validation windows %s .. %s",
            event["study_name"],
            self._filepath,
            event["trials_counted"],
            event["windows"][0]["start"],
            event["windows"][-1]["end"],
        )

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class PaperAccountDataset(AbstractDataset[StagedAccount, StagedAccount]):
    """A paper account folder (``filepath``) over one instrument or a universe of N tickers.

    *load*: a :class:`~reinforce_strategy_creator.deployment.state.StagedAccount` holding the
    committed state (``None`` for a new account) and its committed equity, trade and event logs.
    *save*: publishes the staged batch with the
    crash-safe commit of :class:`AccountStore` (nothing is written when nothing changed; a
    concurrent writer makes it refuse).
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> StagedAccount:
        store = AccountStore(self._filepath)
        if not store.exists():
            return StagedAccount(self._filepath, None)
        state = store.load()
        history = {name: store.read_log(name, state) for name in HISTORY_LOGS}
        return StagedAccount(self._filepath, state, history)

    def save(self, data: StagedAccount) -> None:
        if not isinstance(data, StagedAccount):
            raise DatasetError(
                f"PaperAccountDataset at {self._filepath} expects a StagedAccount, got {type(data).__name__}."
            )
        if data.folder.resolve() != self._filepath.resolve():
            raise DatasetError(
                f"PaperAccountDataset at {self._filepath} was given the account of "
                f"{data.folder}; an account and its ``*_update`` entry (e.g. deployment.account and "
                "deployment.account_update) must have the same filepath in the catalog."
            )
        AccountStore(self._filepath).commit_batch(data)

    def _exists(self) -> bool:
        return (self._filepath / "state.json").exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
