"""Wire ``data_ingestion``: raw prices -> ``universe`` (+ ``data_quality_report``) -> ``primary_prices``.

The ``universe`` is the one panel every consumer reads (the portfolio stage directly); the
single-asset stages read ``primary_prices``, its one-instrument view. Under
``evaluation.scheme: portfolio`` (``--env portfolio``) that view is left out: the universe holds
several tickers; the portfolio stage composes this pipeline without it.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from ...project_params import parameters
from .nodes import ingest_prices, one_instrument


def create_pipeline(one_instrument_view: bool | None = None, **kwargs) -> Pipeline:
    """``one_instrument_view``: add the ``primary_prices`` node (default: unless
    ``evaluation.scheme`` is ``portfolio``)."""
    if one_instrument_view is None:
        one_instrument_view = (parameters().get("evaluation") or {}).get("scheme") != "portfolio"
    nodes = [
        Node(
            func=ingest_prices,
            inputs=["raw_prices", "params:data_ingestion"],
            outputs=["universe", "data_quality_report"],
            name="ingest_prices",
            tags=["paper"],  # a paper-only portfolio run (--tags paper) rebuilds its feed from the raw files
        )
    ]
    outputs = {"universe", "data_quality_report"}
    if one_instrument_view:
        nodes.append(
            Node(func=one_instrument, inputs="universe", outputs="primary_prices", name="one_instrument")
        )
        outputs.add("primary_prices")
    return Pipeline(
        nodes,
        namespace="data_ingestion",
        outputs=outputs,
        parameters={"params:data_ingestion": "params:data_ingestion"},
    )
