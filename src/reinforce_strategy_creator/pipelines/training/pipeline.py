"""Wire the ``training`` stage: one namespace ``training.<agent>`` per agent block of the parameters.

Pattern of kedro-viz's demo project (per-model templates): the agents are the keys of
``training`` other than ``common`` (read by :func:`~reinforce_strategy_creator.project_params.agent_names`),
so adding a block to ``parameters_training.yml`` adds its training nodes, and the dataset
factories ``training.{agent}.*`` (``conf/base/catalog_training.yml``) declare its outputs.
Boundary inputs keep their un-namespaced names. Every node carries the tags ``training`` and
``<agent>``, so one agent can be run alone (``--namespaces training.ppo`` or ``--tags ppo``).
"""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Pipeline, node, pipeline

from ...project_params import agent_names
from .nodes import plot_learning_curve, train_node

BOUNDARY_INPUTS = {"model_input_train", "model_input_validation", "feature_scaler"}
PARAMETERS = ("params:environment", "params:training", "params:feature_engineering", "params:compute")


def agent_pipeline(agent: str) -> Pipeline:
    nodes = [
        node(
            train_node(agent),
            inputs=["model_input_train", "model_input_validation", "feature_scaler", *PARAMETERS],
            outputs=["policy", "history"],
            name="train",
        ),
        node(plot_learning_curve, inputs="history", outputs="learning_curve", name="plot_learning_curve"),
    ]
    return pipeline(
        nodes,
        namespace=f"training.{agent}",
        inputs=BOUNDARY_INPUTS,
        parameters={p: p for p in PARAMETERS},
        tags=["training", agent],
    )


def create_pipeline(agents: Sequence[str] | None = None, **kwargs) -> Pipeline:
    return sum((agent_pipeline(a) for a in (agent_names() if agents is None else agents)), Pipeline([]))
