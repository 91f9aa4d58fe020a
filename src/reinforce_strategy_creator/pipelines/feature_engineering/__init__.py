"""``feature_engineering``: prices -> causal features -> embargoed splits -> scaled model input."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
