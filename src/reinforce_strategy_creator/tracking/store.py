"""Writing run records to MLflow, in the driver only, and checking the store before a run.

Workers (processes, Dask) never import this module: they return results, the driver saves them
through the catalog, and the project's hook hands the saved outputs to :func:`write_record`. So
one ``kedro run`` is one MLflow run with its nested runs, whatever the compute backend.
Writes go through ``MlflowClient.log_batch`` in MLflow's batch limits (1000 metrics, 100
parameters, 100 tags per call).
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from ..errors import InputError
from .record import RunRecord

#: mlflow.yml's key of the tracking URI (or the environment variable when the key is null)
URI_SETTING = "conf/<env>/mlflow.yml server.mlflow_tracking_uri (or MLFLOW_TRACKING_URI when it is null)"
OFF = "or run without tracking: --params tracking.enabled=false"


class TrackingError(InputError):
    """The MLflow store cannot be reached or refuses what is logged; the message says what to do."""


def redact(uri: str) -> str:
    """``uri`` without a password (``user:***@host``)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def check_reachable(uri: str, setting: str = URI_SETTING, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when an HTTP tracking server does not answer: MLflow's own
    client would retry for minutes before saying so."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as response:
            response.read(64)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"{setting} = {redact(uri)}: no MLflow tracking server answers there ({reason}). Start "
            f"the server, point the setting at a running one, {OFF}."
        ) from exc


def code_version(project_path: str | Path) -> dict[str, str]:
    """``git.commit`` and ``git.dirty`` of the project (``unknown`` outside a git checkout) and
    the installed package version."""
    tags = {"package.version": _package_version()}
    try:
        commit = _git(project_path, "rev-parse", "HEAD")
        dirty = bool(_git(project_path, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return {**tags, "git.commit": "unknown", "git.dirty": "unknown"}
    return {**tags, "git.commit": commit, "git.dirty": str(dirty).lower()}


def _git(path: str | Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True, timeout=10)
    return out.stdout.strip()


def _package_version() -> str:
    try:
        return metadata.version("reinforce-strategy-creator")
    except metadata.PackageNotFoundError:
        return "unknown"


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def log_params(
    client: MlflowClient, run_id: str, params: Mapping[str, str], long_params: str = "tag"
) -> None:
    """Log ``params``; a value longer than MLflow's limit follows ``long_params`` (mlflow.yml's
    ``tracking.params.long_params_strategy``): ``tag`` (kept whole as a tag), ``truncate`` or ``fail``."""
    kept, tags = {}, {}
    for key, value in params.items():
        if len(value) <= MAX_PARAM_VAL_LENGTH:
            kept[key] = value
        elif long_params == "tag" and len(value) <= MAX_TAG_VAL_LENGTH:
            tags[key] = value
        elif long_params == "truncate":
            kept[key] = value[:MAX_PARAM_VAL_LENGTH]
        else:
            raise TrackingError(
                f"parameter {key} is {len(value)} characters long, over MLflow's limit of "
                f"{MAX_PARAM_VAL_LENGTH}: set mlflow.yml tracking.params.long_params_strategy to tag "
                f"or truncate, shorten the parameter, {OFF}."
            )
    for chunk in _chunks(sorted(kept.items()), 100):
        client.log_batch(run_id, params=[Param(k, v) for k, v in chunk])
    set_tags(client, run_id, tags)


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    for chunk in _chunks(sorted(tags.items()), 100):
        client.log_batch(run_id, tags=[RunTag(k, str(v)[:MAX_TAG_VAL_LENGTH]) for k, v in chunk])


def log_metrics(
    client: MlflowClient, run_id: str, metrics: Mapping[str, float], history: Sequence[tuple] = ()
) -> None:
    now = int(time.time() * 1000)
    points = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())]
    points += [Metric(k, float(v), now, int(step)) for k, v, step in history]
    for chunk in _chunks(points, 1000):
        client.log_batch(run_id, metrics=list(chunk))


def write_record(
    client: MlflowClient,
    run_id: str,
    record: RunRecord,
    artifacts: Iterable[tuple[str | Path, str]] = (),
) -> list[str]:
    """Add ``record`` to the run ``run_id``: its tags and metrics, one finished nested run per
    child (parent tag ``mlflow.parentRunId``), and the files ``artifacts`` as ``(path, folder)``.
    Returns the nested runs' ids in the record's order."""
    experiment_id = client.get_run(run_id).info.experiment_id
    set_tags(client, run_id, record.tags)
    log_metrics(client, run_id, record.metrics)
    children = []
    for child in record.children:
        tags = {MLFLOW_PARENT_RUN_ID: run_id, MLFLOW_RUN_NAME: child.name}
        run = client.create_run(experiment_id, run_name=child.name, tags=tags)
        set_tags(client, run.info.run_id, child.tags)
        log_params(client, run.info.run_id, child.params)
        log_metrics(client, run.info.run_id, child.metrics, child.history)
        client.set_terminated(run.info.run_id)
        children.append(run.info.run_id)
    for path, folder in artifacts:
        client.log_artifact(run_id, str(path), folder)
    return children
