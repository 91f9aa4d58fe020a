"""Wire the ``deployment`` nodes: registration (tag ``registry``) then paper trading (tag ``paper``).

``deployment.production_model`` and ``deployment.shadow_model`` are two views of the same
registry file: the registration node writes both (the same idempotent request) and the paper
node reads both (the production entry, and the newest registered champion), so Kedro always
registers before it trades. The paper node trades two accounts on the same feed: the
production account (only a promoted model) and the shadow account (the newest champion,
whatever its verdict). The report node reads both accounts back after their commit, so the
status JSON and the PNG show committed numbers. Day to day, without a new evaluation:
``kedro run --pipelines deployment --tags paper``.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import check_mode, normalise_feed, paper_trade, report_accounts, request_registration


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        node(
            check_mode,
            inputs="params:deployment",
            outputs="validated_params",
            name="check_mode",
            tags=["registry", "paper"],
        ),
        node(
            request_registration,
            inputs=["champion", "validated_params"],
            outputs=["production_model", "shadow_model"],
            name="register_champion",
            tags=["registry"],
        ),
        node(
            normalise_feed,
            inputs=["market_feed", "validated_params"],
            outputs="feed_prices",
            name="normalise_feed",
            tags=["paper"],
        ),
        node(
            paper_trade,
            inputs=[
                "production_model",
                "shadow_model",
                "account",
                "shadow_account",
                "feed_prices",
                "feature_scaler",
                "model_input_train",
                "params:environment",
                "params:feature_engineering",
                "validated_params",
            ],
            outputs=["account_update", "shadow_account_update", "session_status"],
            name="paper_trade",
            tags=["paper"],
        ),
        node(
            report_accounts,
            inputs=["account_update", "shadow_account_update", "session_status", "params:environment"],
            outputs=["paper_status", "account_equity_png"],
            name="report_account",
            tags=["paper"],
        ),
    ]
    return pipeline(
        nodes,
        namespace="deployment",
        inputs={"champion", "feature_scaler", "model_input_train"},
        parameters={
            "params:deployment": "params:deployment",
            "params:environment": "params:environment",
            "params:feature_engineering": "params:feature_engineering",
        },
        prefix_datasets_with_namespace=True,
    )
