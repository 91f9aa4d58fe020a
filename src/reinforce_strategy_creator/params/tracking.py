"""``tracking``: whether and how much a run records in MLflow (docs/tracking.md).

Where runs go (the tracking URI, the experiment, the long-parameter strategy) is kedro-mlflow's
``conf/<env>/mlflow.yml``; this block says whether this run records at all and what beyond the
parameters, tags, metrics and artifacts it records.
"""

from __future__ import annotations

from typing import ClassVar

from .base import Flag, Params


class TrackingParams(Params):
    """``tracking``: the switch and the optional parts of a tracked run."""

    PATH: ClassVar[str] = "tracking"
    FILE: ClassVar[str] = "conf/base/parameters_tracking.yml"

    enabled: Flag = True
    """Record this run in MLflow (mlflow.yml's store) and mirror the model registry there. `false`
    (`--params tracking.enabled=false`, or a `conf/<env>/parameters_tracking.yml`): no MLflow run,
    no store is opened, the registry mirror is left as it is (`kedro models sync` catches up)."""
    training_curves: Flag = True
    """Each fold's nested run holds the training curves as metric histories by step: every seed's
    validation score per checkpoint and its losses."""
    registry_mirror: Flag = True
    """After a run and after `kedro models promote / rollback`, make the MLflow registered model
    agree with the project's registry (versions, aliases `production` / `shadow` / `candidate`)."""
