"""Hyperparameter search with Optuna, judged on walk-forward validation windows only.

A plain library (no Kedro): ``params.tuning`` declares the block, :mod:`.objective` scores one
configuration on the folds' validation windows, :mod:`.storage` opens the study's storage,
:mod:`.study` queues and runs the trials on the compute backend, :mod:`.report` writes the
optimisation-history figure. How to run it and the honesty rules: docs/hyperparameter_search.md.
"""

from .objective import TuningData, evaluate_config, trial_plan, tuning_data
from .study import StudyResult, TuningError, run_study, study_event

__all__ = [
    "StudyResult",
    "TuningData",
    "TuningError",
    "evaluate_config",
    "run_study",
    "study_event",
    "trial_plan",
    "tuning_data",
]
