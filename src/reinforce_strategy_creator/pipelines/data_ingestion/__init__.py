"""``data_ingestion``: raw price file -> validated, adjusted ``primary_prices``."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
