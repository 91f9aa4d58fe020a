"""Wire the ``deployment`` nodes: registration (tag ``registry``) then paper trading (tag ``paper``).

``deployment.production_model`` is written by the registration node and read by the paper
node (same registry file), so Kedro always registers before it trades. The report node reads the account back after
its commit, so the status JSON and the equity PNG show committed numbers. Day to day, without a
new evaluation: ``kedro run --pipelines deployment --tags paper``.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import check_mode, normalise_feed, paper_trade, report_account, request_registration


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        node(check_mode, inputs=["params:deployment", "params:environment"],
             outputs="validated_params", name="check_mode", tags=["registry", "paper"]),
        node(request_registration,
             inputs=["champion", "validated_params"],
             outputs="production_model", name="register_champion", tags=["registry"]),
        node(normalise_feed, inputs=["market_feed", "validated_params"], outputs="feed_prices",
             name="normalise_feed", tags=["paper"]),
        node(paper_trade,
             inputs=["production_model", "account", "feed_prices", "feature_scaler",
                     "model_input_train", "params:environment",
                     "params:feature_engineering.features", "params:feature_engineering.splits",
                     "validated_params"],
             outputs=["account_update", "session_status"], name="paper_trade", tags=["paper"]),
        node(report_account, inputs=["account_update", "session_status", "params:environment"],
             outputs=["paper_status", "account_equity_png"], name="report_account", tags=["paper"]),
    ]
    return pipeline(
        nodes,
        namespace="deployment",
        inputs={"champion", "feature_scaler", "model_input_train"},
        parameters={"params:deployment": "params:deployment",
                    "params:environment": "params:environment",
                    "params:feature_engineering.features": "params:feature_engineering.features",
                    "params:feature_engineering.splits": "params:feature_engineering.splits"},
        prefix_datasets_with_namespace=True,
    )
