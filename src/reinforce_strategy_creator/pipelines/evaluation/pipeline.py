"""Wire the ``evaluation`` nodes under the namespace ``evaluation``.

The agents evaluated are the agent blocks of the parameters (``project_params.agent_names``),
the same list the training pipeline is built from; boundary datasets keep their un-namespaced
names (docs/contracts.md, "Stage wiring").
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from reinforce_strategy_creator.evaluation.results import FIGURES

from ...project_params import agent_names
from .nodes import (
    backtest_test,
    backtest_validation,
    make_figures,
    metrics_test,
    metrics_validation,
    prepare_setup,
    publish_table,
    render_report,
    select_champion,
    summarise,
    unpack_figures,
)

__all__ = ["create_pipeline"]


def _policies(agents) -> dict[str, str]:
    return {a: f"training.{a}.policy" for a in agents}


def create_pipeline(agents=None, **kwargs) -> Pipeline:
    agents = tuple(agent_names() if agents is None else agents)
    policies = _policies(agents)
    histories = {a: f"training.{a}.history" for a in agents}
    nodes = [
        node(
            prepare_setup,
            inputs={
                "environment": "params:environment",
                "evaluation": "params:evaluation",
                "feature_scaler": "feature_scaler",
                "feature_engineering": "params:feature_engineering",
                "model_input_train": "model_input_train",
                "parameters": "parameters",
                **policies,
            },
            outputs="setup",
            name="prepare_setup",
        ),
        node(
            backtest_validation,
            inputs={
                "model_input": "model_input_validation",
                "primary_prices": "primary_prices",
                "setup": "setup",
                **policies,
            },
            outputs="validation_ledger",
            name="backtest_validation",
        ),
        node(
            backtest_test,
            inputs={
                "model_input": "model_input_test",
                "primary_prices": "primary_prices",
                "setup": "setup",
                **policies,
            },
            outputs="test_ledger",
            name="backtest_test",
        ),
        node(
            metrics_validation,
            inputs="validation_ledger",
            outputs="validation_metrics",
            name="metrics_validation",
        ),
        node(metrics_test, inputs="test_ledger", outputs="test_metrics", name="metrics_test"),
        node(
            publish_table,
            inputs="validation_metrics",
            outputs="validation_metrics_csv",
            name="publish_validation_metrics",
        ),
        node(publish_table, inputs="test_metrics", outputs="test_metrics_csv", name="publish_test_metrics"),
        node(
            summarise,
            inputs=["validation_metrics", "test_metrics", "setup"],
            outputs=["seed_summary", "ranking", "random_policy", "metrics_json"],
            name="summarise",
        ),
        node(
            select_champion,
            inputs={
                "validation": "validation_metrics",
                "test": "test_metrics",
                "setup": "setup",
                "model_input_test": "model_input_test",
                "gate_decisions": "gate_decisions",
                **histories,
            },
            outputs=["champion", "evaluation_verdict", "selection", "gate_decision"],
            name="select_champion",
        ),
        node(
            make_figures,
            inputs={
                "validation_ledger": "validation_ledger",
                "test_ledger": "test_ledger",
                "model_input_test": "model_input_test",
                "validation": "validation_metrics",
                "test": "test_metrics",
                "champion": "champion",
                "setup": "setup",
                **histories,
            },
            outputs="figures",
            name="make_figures",
        ),
        node(unpack_figures, inputs="figures", outputs=[f"{f}_png" for f in FIGURES], name="save_figures"),
        node(
            render_report,
            inputs=[
                "setup",
                "validation_metrics",
                "test_metrics",
                "seed_summary",
                "ranking",
                "random_policy",
                "selection",
                "evaluation_verdict",
                "figures",
                "model_input_validation",
                "model_input_test",
            ],
            outputs="report",
            name="render_report",
        ),
    ]
    return pipeline(
        nodes,
        namespace="evaluation",
        inputs={
            "model_input_train",
            "model_input_validation",
            "model_input_test",
            "primary_prices",
            "feature_scaler",
            *policies.values(),
            *histories.values(),
        },
        outputs={"champion", "evaluation_verdict"},
        parameters={
            "parameters": "parameters",
            "params:environment": "params:environment",
            "params:evaluation": "params:evaluation",
            "params:feature_engineering": "params:feature_engineering",
        },
        prefix_datasets_with_namespace=True,
    )
