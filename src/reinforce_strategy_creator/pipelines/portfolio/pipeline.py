"""Wire the ``portfolio`` stage: ``data_ingestion``'s universe (its ``ingest_prices`` node, composed
here) -> features -> folds -> stitched record -> gate -> report
-> deployment fold -> registry -> paper account (docs/walk_forward.md).

Every dataset is ``portfolio.*``; one namespace ``portfolio.<fold>`` per fold (``fold_1`` …
``fold_<walk_forward.folds>`` and ``deployment``), each training every portfolio agent on its
own training window and selecting on its validation window. ``full_cycle`` runs this stage alone
under ``evaluation.scheme: portfolio`` (``kedro run --pipelines full_cycle --env portfolio``).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from ..data_ingestion.pipeline import create_pipeline as data_ingestion
from ..walk_forward.pipeline import fold_names
from .nodes import (
    build_panel,
    deployment_champion,
    deployment_policy,
    fold_node,
    index_close,
    judge_record,
    paper_trade,
    plan_portfolio,
    portfolio_figures,
    register_champion,
    render_report,
    report_paper,
    stitch_record,
    stitched_equity_figure,
)

PARAMETERS = (
    "params:walk_forward",
    "params:feature_engineering",
    "params:portfolio",
    "params:evaluation",
    "params:environment",
)


def _fold(name: str) -> Pipeline:
    return pipeline(
        [
            node(
                fold_node(name),
                inputs=["layout", "index_close", "fold_cache", "params:compute"],
                outputs="result",
                name="train_and_select",
            )
        ],
        namespace=f"portfolio.{name}",
        inputs={
            "layout": "portfolio.layout",
            "index_close": "portfolio.index_close",
            "fold_cache": "walk_forward.fold_cache",  # the one fold store of every walk-forward
        },
        parameters={"params:compute": "params:compute"},
        tags=["portfolio", name],
    )


def create_pipeline(folds: int | None = None, **kwargs) -> Pipeline:
    """``folds``: how many test folds to wire (default ``walk_forward.folds`` of the session's
    parameters)."""
    folds = fold_names(folds)
    results = [f"{name}.result" for name in folds]
    head = pipeline(
        [
            node(
                index_close,
                inputs=["raw_index", "universe", "params:portfolio"],
                outputs="index_close",
                name="align_index",
                tags=["paper"],  # a paper-only run (--tags paper) rebuilds the feed from the raw files
            ),
            node(
                build_panel,
                inputs=["universe", "params:feature_engineering", "params:portfolio"],
                outputs=["panel", "features", "features_info"],
                name="build_features",
                tags=["paper"],  # a paper-only run (--tags paper) rebuilds the feed from the raw files
            ),
            node(
                plan_portfolio,
                inputs=["panel", *PARAMETERS],
                outputs=["layout", "plan", "plan_table"],
                name="plan_folds",
                tags=["paper"],  # a paper-only run (--tags paper) rebuilds the feed from the raw files
            ),
            node(
                stitch_record,
                inputs=["layout", "index_close", *results],
                outputs=["record", "ledger", "metrics", "folds", "weights"],
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
                portfolio_figures,
                inputs="record",
                outputs=["weights_png", "turnover_png", "contribution_png"],
                name="plot_portfolio",
            ),
            node(
                deployment_policy,
                inputs="deployment.result",
                outputs="deployment_policy",
                name="store_policy",
            ),
            node(
                deployment_champion,
                inputs=["deployment_policy", "deployment.result", "verdict", "params:evaluation"],
                outputs="champion",
                name="deployment_champion",
            ),
        ],
        namespace="portfolio",
        inputs={"universe": "universe"},  # data_ingestion's panel
        parameters={p: p for p in PARAMETERS},
        tags=["portfolio"],
    )
    stages = [data_ingestion(one_instrument_view=False), head, *(_fold(n) for n in [*folds, "deployment"])]
    return sum(stages, Pipeline([])) + _paper()


def _paper() -> Pipeline:
    """Registration (tag ``registry``) then the two paper accounts (tag ``paper``)."""
    return pipeline(
        [
            node(
                register_champion,
                inputs=["champion", "params:deployment", "layout"],
                outputs=["production_model", "shadow_model"],
                name="register_champion",
                tags=["registry"],
            ),
            node(
                paper_trade,
                inputs=[
                    "production_model",
                    "shadow_model",
                    "account",
                    "shadow_account",
                    "layout",
                    "params:portfolio",
                    "params:deployment",
                ],
                outputs=["account_update", "shadow_account_update", "session_status"],
                name="paper_trade",
                tags=["paper"],
            ),
            node(
                report_paper,
                inputs=["account_update", "shadow_account_update", "session_status"],
                outputs=["paper_status", "paper_equity_png"],
                name="report_paper",
                tags=["paper"],
            ),
        ],
        namespace="portfolio",
        parameters={"params:deployment": "params:deployment", "params:portfolio": "params:portfolio"},
        tags=["portfolio"],
    )
