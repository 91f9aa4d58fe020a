"""The project's model registry mirrored in MLflow's: one registered model, one version per
registered champion, aliases for the accounts' models.

The project's registry (``deployment.registry``) stays the record: append-only, locked, audited.
:func:`sync` makes the MLflow registered model agree with it, whatever state the mirror is in
(never written, behind after a crash between the two writes, edited by hand in the UI):

- every registry entry is a model version (tag ``entry_id``), created once, in registration
  order. Its files are the artifact's ``spec.json`` and ``seed_<n>.safetensors``, uploaded only
  after they match the SHA-256 the registry recorded (never a pickle), to a finished run of the
  ``<experiment>.registry`` experiment;
- each version's tags say its status, verdict, and the forced promotion's reason;
- the aliases: ``production`` is the registry's production entry, ``shadow`` the newest entry
  (the one the shadow account trades), ``candidate`` the newest entry still a candidate. An
  alias with no entry is removed.

Running it twice changes nothing the second time. ``kedro models promote / rollback`` run it after
the registry commits, a tracked run after its last node, and ``kedro models sync`` on demand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from ..artifact_digest import SPEC_FILE
from ..deployment.registry import CANDIDATE, ModelRegistry, RegistryEntry
from ..errors import InputError
from .config import TrackingSetup, prepare_store

ALIASES = ("production", "shadow", "candidate")


@dataclass
class MirrorReport:
    """What :func:`sync` changed, and the entries it could not mirror (with why)."""

    created: list[str] = field(default_factory=list)
    retagged: list[str] = field(default_factory=list)
    aliases: dict[str, str | None] = field(default_factory=dict)
    alias_changes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.retagged or self.alias_changes)


def desired_aliases(entries: list[RegistryEntry], production: str | None) -> dict[str, str | None]:
    """Alias → entry id, from the registry's entries in registration order."""
    candidates = [e.entry_id for e in entries if e.status == CANDIDATE]
    return {
        "production": production,
        "shadow": entries[-1].entry_id if entries else None,
        "candidate": candidates[-1] if candidates else None,
    }


def version_tags(entry: RegistryEntry) -> dict[str, str]:
    """What a model version says about its entry."""
    mine = (ev for ev in entry.history if ev.get("entry_id") == entry.entry_id)
    promoted = [ev for ev in mine if ev.get("event") == "promote"]
    last = promoted[-1] if promoted else {}
    tags = {
        "entry_id": entry.entry_id,
        "agent": entry.agent,
        "seed": str(entry.seed),
        "policy_version": entry.version,
        "status": entry.status,
        "verdict.passed": str(entry.passed).lower(),
        "universe": json.dumps(entry.universe) if entry.universe else "1 asset",
        "registered_at": entry.registered_at,
        "promotion.forced": str(bool(last.get("forced"))).lower() if last else "",
        "promotion.reason": str(last.get("reason") or "") if last else "",
        "promotion.by": str(last.get("by") or "") if last else "",
    }
    # the registry's digest of each file, to check a download against (artifact_digest.verify_artifact)
    tags.update({f"sha256.{name}": digest for name, digest in sorted((entry.artifact_sha256 or {}).items())})
    return {k: v for k, v in tags.items() if v != ""}


def _model_files(registry: ModelRegistry, entry: RegistryEntry) -> list[Path]:
    """The entry's artifact files, checked against the registry's recorded hashes."""
    registry.check_artifact(entry)
    folder = registry.artifact_folder(entry)
    return [folder / SPEC_FILE, *sorted(folder.glob("seed_*.safetensors"))]


def _ensure_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Champions registered by the project's model registry (docs/tracking.md)."
        )


def _experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


def sync(
    client: MlflowClient,
    registry: ModelRegistry,
    name: str,
    experiment: str,
    artifact_location: str | None = None,
) -> MirrorReport:
    """Make the registered model ``name`` agree with ``registry`` (module docstring)."""
    report = MirrorReport()
    state = registry.state()
    entries = list(state.entries.values())
    _ensure_model(client, name)
    versions = {v.tags.get("entry_id"): v for v in client.search_model_versions(f"name='{name}'")}
    for entry in entries:
        tags = version_tags(entry)
        version = versions.get(entry.entry_id)
        if version is None:
            try:
                files = _model_files(registry, entry)
            except (InputError, OSError) as exc:  # a missing or edited artifact, named
                report.skipped[entry.entry_id] = str(exc)
                continue
            run = client.create_run(
                _experiment(client, f"{experiment}.registry", artifact_location),
                run_name=entry.entry_id,
                tags={MLFLOW_RUN_NAME: entry.entry_id, "entry_id": entry.entry_id},
            )
            for path in files:
                client.log_artifact(run.info.run_id, str(path), "model")
            client.set_terminated(run.info.run_id)
            version = client.create_model_version(
                name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags
            )
            versions[entry.entry_id] = version
            report.created.append(entry.entry_id)
            continue
        stale = {k: v for k, v in tags.items() if version.tags.get(k) != v}
        for key, value in stale.items():
            client.set_model_version_tag(name, version.version, key, value)
        for key in set(version.tags) - set(tags):
            if key.startswith("promotion."):
                client.delete_model_version_tag(name, version.version, key)
                stale[key] = ""
        if stale:
            report.retagged.append(entry.entry_id)
    current = client.get_registered_model(name).aliases or {}
    for alias, entry_id in desired_aliases(entries, state.production).items():
        version = versions.get(entry_id) if entry_id else None
        wanted = str(version.version) if version is not None else None
        report.aliases[alias] = entry_id if version is not None else None
        have = str(current[alias]) if alias in current else None
        if have == wanted:
            continue
        if wanted is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, wanted)
        report.alias_changes.append(f"{alias}: {have} -> {wanted}")
    return report


def aliases(client: MlflowClient, name: str) -> dict[str, Any]:
    """The registered model's aliases as entry ids (``None`` for an alias that is not set)."""
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return dict.fromkeys(ALIASES)
    out: dict[str, Any] = {}
    for alias in ALIASES:
        version = (model.aliases or {}).get(alias)
        out[alias] = (
            client.get_model_version(name, str(version)).tags.get("entry_id") if version is not None else None
        )
    return out


def sync_setup(setup: TrackingSetup, registry: ModelRegistry, project_path: str | Path) -> MirrorReport:
    """:func:`sync` with the store of ``setup`` (``mlflow.yml``), creating an embedded store's
    folder when it is missing."""
    prepare_store(setup.uri, project_path)
    return sync(setup.client(), registry, setup.model_name, setup.experiment, setup.registry_artifacts)
