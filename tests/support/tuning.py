"""Cheap objectives for the tuning worker tests (importable by spawned worker processes)."""

from __future__ import annotations

import os
import time


def sleepy_quadratic(trial) -> float:
    """``-(x - 1)^2`` after a short sleep; records the worker's pid on the trial first."""
    trial.set_user_attr("pid", os.getpid())
    x = trial.suggest_float("x", -5.0, 5.0)
    time.sleep(float(os.environ.get("RSC_TUNING_SLEEP", "0.3")))
    return -((x - 1.0) ** 2)
