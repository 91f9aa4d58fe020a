"""``data_ingestion``: one instrument or a universe -> one validated, adjusted panel (``universe``),
its one-instrument view ``primary_prices`` and the ``data_quality_report``."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
