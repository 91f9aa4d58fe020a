"""Wire ``data_ingestion``: one node, namespaced, boundary outputs un-namespaced."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import ingest_prices


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=ingest_prices,
                inputs=["raw_prices", "params:data_ingestion"],
                outputs=["primary_prices", "data_quality_report"],
                name="ingest_prices",
            )
        ],
        namespace="data_ingestion",
        outputs={"primary_prices", "data_quality_report"},
        parameters={"params:data_ingestion": "params:data_ingestion"},
    )
