"""Wire the ``walk_forward`` stage: one namespace ``walk_forward.<fold>`` per fold.

The folds are ``fold_1`` … ``fold_<walk_forward.folds>`` and ``deployment`` (read from the
parameters, like the agents of ``training``). ``walk_forward.train_folds`` trains every agent of
every fold on that fold's training window, all folds together (folds × seeds of an agent as one
population); each fold's namespace then selects its champion on its validation window.
``stitch`` replays the folds' choices over their test windows as one account, and ``judge``
gates the procedure on that record.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from ...project_params import parameters
from .nodes import (
    deployment_champion,
    deployment_policy,
    deployment_tables,
    fold_histories,
    fold_node,
    judge_record,
    plan_walk_forward,
    render_report,
    stitch_record,
    stitched_equity_figure,
    train_folds_node,
)

PARAMETERS = (
    "params:feature_engineering",
    "params:environment",
    "params:training",
    "params:evaluation",
    "params:walk_forward",
)


def fold_names(n: int | None = None) -> list[str]:
    """``fold_1`` … ``fold_<n>``, ``n`` by default ``walk_forward.folds`` of the session's
    parameters (default 5)."""
    n = int((parameters().get("walk_forward") or {}).get("folds", 5) if n is None else n)
    return [f"fold_{k}" for k in range(1, n + 1)]


def _fold(name: str) -> Pipeline:
    return pipeline(
        [
            node(
                fold_node(name),
                inputs=["trained", "layout", "primary_prices", "fold_cache"],
                outputs="result",
                name="select_champion",
            )
        ],
        namespace=f"walk_forward.{name}",
        inputs={
            "trained": "walk_forward.trained",
            "layout": "walk_forward.layout",
            "primary_prices": "primary_prices",
            "fold_cache": "walk_forward.fold_cache",
        },
        tags=["walk_forward", name],
    )


def create_pipeline(deploy: bool = False, **kwargs) -> Pipeline:
    """``walk_forward.plan_folds`` / ``train_folds``, the fold namespaces, then ``stitch`` / ``judge`` /
    ``render_report`` / ``plot_stitched_equity``; every dataset of the stage is
    ``walk_forward.*`` and it reads ``primary_prices``. With ``deploy`` (``full_cycle`` under
    ``evaluation.scheme: walk_forward``, with :func:`deployment_inputs`) it also trains the
    deployment fold (``walk_forward.deployment``), stores its champion and writes
    the ``champion``, ``feature_scaler`` and ``model_input_train`` that deployment reads; run
    alone, the stage leaves those (the single split's) untouched.
    ``walk_forward.training_history`` holds every fold's training histories (the deployment
    fold's too, with ``deploy``)."""
    folds = fold_names()
    trained = folds + (["deployment"] if deploy else [])
    results = [f"{name}.result" for name in folds]
    head = pipeline(
        [
            node(
                plan_walk_forward,
                inputs=["primary_prices", *PARAMETERS],
                outputs=["layout", "plan", "plan_table"],
                name="plan_folds",
            ),
            node(
                train_folds_node(trained),
                inputs=["layout", "primary_prices", "fold_cache", "params:compute"],
                outputs="trained",
                name="train_folds",
                tags=trained,
            ),
            node(
                stitch_record,
                inputs=["layout", "primary_prices", *results],
                outputs=["record", "ledger", "metrics", "folds"],
                name="stitch",
            ),
            node(
                judge_record,
                inputs=["record", "layout", "gate_decisions", "tuning_studies", *results],
                outputs=["verdict", "gate_decision"],
                name="judge",
            ),
            node(
                render_report,
                inputs=["record", "verdict", "params:environment"],
                outputs="report",
                name="render_report",
            ),
            node(
                stitched_equity_figure,
                inputs="record",
                outputs="stitched_equity_png",
                name="plot_stitched_equity",
            ),
            node(
                fold_histories,
                inputs=results + (["deployment.result"] if deploy else []),
                outputs="training_history",
                name="collect_training_histories",
            ),
        ],
        namespace="walk_forward",
        inputs={"primary_prices"},
        parameters={p: p for p in PARAMETERS} | {"params:compute": "params:compute"},
        tags=["walk_forward"],
    )
    stage = sum((_fold(name) for name in folds), head)
    return stage + _fold("deployment") + _deploy() if deploy else stage


def deployment_inputs() -> Pipeline:
    """``deployment.deployment_tables``: the deployment fold's ``feature_scaler`` and
    ``model_input_train`` from ``primary_prices`` and the parameters (the same tables the fold
    trained on). It sits in the deployment namespace because it feeds only deployment, and its
    inputs precede the model input layer (kedro-viz orders layers by the whole graph: an output
    of this namespace that nothing in it reads, a third table, would follow the namespace's
    model-output inputs and make the layers circular)."""
    return pipeline(
        [
            node(
                deployment_tables,
                inputs=["primary_prices", *PARAMETERS],
                outputs=["feature_scaler", "model_input_train"],
                name="deployment_tables",
            )
        ],
        namespace="deployment",
        inputs={"primary_prices"},
        outputs={"feature_scaler", "model_input_train"},
        parameters={p: p for p in PARAMETERS},
        tags=["walk_forward", "deploy"],
    )


def _deploy() -> Pipeline:
    return pipeline(
        [
            node(
                deployment_policy,
                inputs="deployment.result",
                outputs="deployment_policy",
                name="store_deployment_policy",
            ),
            node(
                deployment_champion,
                inputs=["deployment_policy", "deployment.result", "verdict", "params:evaluation"],
                outputs="champion",
                name="deployment_champion",
            ),
        ],
        namespace="walk_forward",
        outputs={"champion"},
        parameters={"params:evaluation": "params:evaluation"},
        tags=["walk_forward", "deploy"],
    )
