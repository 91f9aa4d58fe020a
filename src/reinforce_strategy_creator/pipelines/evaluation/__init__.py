"""``evaluation``: replay trained agents and benchmarks, metrics, statistics, gate, champion, report."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
