"""The ``training`` pipeline: one namespace per agent block of the parameters."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
