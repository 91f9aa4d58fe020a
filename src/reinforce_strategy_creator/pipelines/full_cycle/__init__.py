"""``full_cycle``: every stage, in order, as one pipeline."""

from .pipeline import STAGES, create_pipeline

__all__ = ["STAGES", "create_pipeline"]
