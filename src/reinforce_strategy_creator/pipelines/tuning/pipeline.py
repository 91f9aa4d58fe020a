"""Wire the ``tuning`` stage: one node that runs the study and writes its outputs.

``kedro run --pipelines tuning`` reads ``primary_prices`` (run ``data_ingestion`` first) and the
``tuning``, ``training``, ``feature_engineering``, ``environment``, ``walk_forward`` and ``compute``
blocks; it writes the best parameters, the study summary, the trial table, the optimisation
history and a ``tuning_study`` event in the model registry (docs/hyperparameter_search.md).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import run_tuning_study

PARAMETERS = (
    "params:tuning",
    "params:training",
    "params:feature_engineering",
    "params:environment",
    "params:walk_forward",
    "params:compute",
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                run_tuning_study,
                inputs=["primary_prices", *PARAMETERS],
                outputs=["best_params", "study_summary", "trials", "history_png", "study_event"],
                name="run_study",
            )
        ],
        namespace="tuning",
        inputs={"primary_prices"},
        parameters={p: p for p in PARAMETERS},
        tags=["tuning"],
    )
