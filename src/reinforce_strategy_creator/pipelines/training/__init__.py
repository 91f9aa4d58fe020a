"""``training`` stage: one namespaced template pipeline per agent (see docs/training.md)."""

from .pipeline import AGENTS, create_pipeline

__all__ = ["AGENTS", "create_pipeline"]
