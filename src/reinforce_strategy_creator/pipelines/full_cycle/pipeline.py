"""Compose the stage pipelines into ``full_cycle``.

Stages are joined through the Data Catalog: the outputs one stage declares are the inputs the
next reads, so the composition is a plain sum of the stage pipelines. ``evaluation.scheme``
chooses what runs between ingestion and deployment: ``walk_forward`` (default: the walk_forward
stage, whose deployment fold provides the ``champion``, ``feature_scaler`` and
``model_input_train`` deployment reads) or ``single_split`` (feature_engineering, training,
evaluation).
"""

from __future__ import annotations

import importlib

from kedro.pipeline import Pipeline

from ...project_params import parameters
from ..walk_forward.pipeline import deployment_inputs

STAGES = ("data_ingestion", "feature_engineering", "training", "evaluation", "deployment")
SCHEMES = {
    "single_split": STAGES,
    "walk_forward": ("data_ingestion", "walk_forward", "deployment"),
    "portfolio": ("portfolio",),
}


def scheme() -> str:
    """``evaluation.scheme`` of the current session's parameters (default ``walk_forward``)."""
    value = str((parameters().get("evaluation") or {}).get("scheme", "walk_forward"))
    if value not in SCHEMES:
        raise ValueError(f"evaluation.scheme = {value!r}: choose one of {sorted(SCHEMES)}")
    return value


def _stage(name: str) -> Pipeline | None:
    module_name = f"reinforce_strategy_creator.pipelines.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:  # the stage has not been built yet
            return None
        raise  # the stage exists but is broken: never hide that
    # under the walk_forward scheme the stage also hands its deployment fold to deployment
    if name == "walk_forward":
        return module.create_pipeline(deploy=True) + deployment_inputs()
    return module.create_pipeline()


def create_pipeline(**kwargs) -> Pipeline:
    stages = [p for p in (_stage(name) for name in SCHEMES[scheme()]) if p is not None]
    if not stages:
        raise RuntimeError("full_cycle found no stage pipelines under pipelines/.")
    return sum(stages, Pipeline([]))
