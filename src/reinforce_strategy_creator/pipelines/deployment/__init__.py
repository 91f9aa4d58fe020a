"""``deployment``: register the evaluated champion, then paper-trade the production model."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
