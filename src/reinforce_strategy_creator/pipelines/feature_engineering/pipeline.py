"""Wire the ``feature_engineering`` nodes; boundary datasets keep un-namespaced names."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline, node, pipeline

from .nodes import (
    compute_feature_table,
    fit_feature_scaler,
    make_model_input,
    split_features,
    validate_inputs,
)

_SPLITS = ("train", "validation", "test")


def _scale_node(split: str) -> Node:
    return node(
        make_model_input,
        inputs=[f"{split}_unscaled", "feature_scaler"],
        outputs=f"model_input_{split}",
        name=f"make_model_input_{split}",
    )


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        node(
            validate_inputs,
            inputs=["primary_prices", "params:feature_engineering", "params:environment"],
            outputs="config",
            name="validate_inputs",
        ),
        node(
            compute_feature_table,
            inputs=["primary_prices", "config"],
            outputs="features",
            name="compute_features",
        ),
        node(
            split_features,
            inputs=["features", "primary_prices", "config"],
            outputs=["train_unscaled", "validation_unscaled", "test_unscaled", "split_summary"],
            name="split_features",
        ),
        node(
            fit_feature_scaler,
            inputs=["train_unscaled", "config"],
            outputs="feature_scaler",
            name="fit_feature_scaler",
        ),
        *[_scale_node(s) for s in _SPLITS],
    ]
    return pipeline(
        nodes,
        namespace="feature_engineering",
        inputs={"primary_prices"},
        outputs={"feature_scaler", *(f"model_input_{s}" for s in _SPLITS)},
        parameters={
            "params:feature_engineering": "params:feature_engineering",
            "params:environment": "params:environment",
        },
        prefix_datasets_with_namespace=True,
    )
