"""``tuning``: an Optuna study over one agent's hyperparameters, scored on walk-forward validation windows."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
