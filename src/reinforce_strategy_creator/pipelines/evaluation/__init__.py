"""``evaluation``: replay trained agents and benchmarks, metrics, statistics, gate, champion, report."""

from .pipeline import AGENTS, create_pipeline

__all__ = ["AGENTS", "create_pipeline"]
