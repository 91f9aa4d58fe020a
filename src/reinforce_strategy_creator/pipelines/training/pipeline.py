"""Wire the ``training`` stage: one template, instantiated per agent as ``training.<agent>``.

Pattern of kedro-viz's demo project: the template is built once and reused with
``pipeline(template, namespace=..., inputs=..., parameters=...)``. Boundary inputs keep
their un-namespaced names; each instance reads its own ``params:training.<agent>`` block
and the shared ``params:training.common`` and ``params:environment``, plus the whole
``params:training`` so that every agent block is validated before any agent trains. Every node carries
the tags ``training`` and ``<agent>`` so one agent can be run alone
(``kedro run --pipelines training --namespaces training.ppo`` or ``--tags ppo``).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import plot_learning_curve, train

AGENTS = ("ppo", "a2c", "dqn")
BOUNDARY_INPUTS = {"model_input_train", "model_input_validation", "feature_scaler"}


def template() -> Pipeline:
    return pipeline(
        [
            node(
                train,
                inputs=["model_input_train", "model_input_validation", "feature_scaler",
                        "params:environment", "params:common", "params:agent", "params:training",
                        "params:feature_spec"],
                outputs=["policy", "history"],
                name="train",
            ),
            node(
                plot_learning_curve,
                inputs=["history", "params:agent"],
                outputs="learning_curve",
                name="plot_learning_curve",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    base = template()
    instances = [
        pipeline(
            base,
            namespace=f"training.{agent}",
            inputs=BOUNDARY_INPUTS,
            parameters={
                "params:environment": "params:environment",
                "params:common": "params:training.common",
                "params:agent": f"params:training.{agent}",
                "params:training": "params:training",
                "params:feature_spec": "params:feature_engineering.features",
            },
            tags=["training", agent],
        )
        for agent in AGENTS
    ]
    return sum(instances, Pipeline([]))
