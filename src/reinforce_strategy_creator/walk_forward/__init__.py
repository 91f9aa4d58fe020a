"""Walk-forward evaluation: fold layouts relative to the data (docs/walk_forward.md).

Plain library, importable without Kedro.
"""

from .folds import Fold, FoldIndexError, FoldLayoutError, FoldPlan, Window, plan_folds

__all__ = ["Fold", "FoldIndexError", "FoldLayoutError", "FoldPlan", "Window", "plan_folds"]
