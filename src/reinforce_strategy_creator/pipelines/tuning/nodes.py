"""Nodes of the ``tuning`` stage: thin wrappers over :mod:`reinforce_strategy_creator.tuning`."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ...env import EnvConfig
from ...params.compute import ComputeParams
from ...params.features import FeatureParams
from ...params.training import TrainingParams
from ...params.tuning import TuningParams
from ...params.walk_forward import WalkForwardParams
from ...tuning import run_study
from ...tuning.report import history_figure

logger = logging.getLogger(__name__)


def run_tuning_study(
    primary_prices: pd.DataFrame,
    tuning: TuningParams,
    training: TrainingParams,
    feature_engineering: FeatureParams,
    environment: EnvConfig,
    walk_forward: WalkForwardParams,
    compute: ComputeParams,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, pd.DataFrame], dict[str, Figure], dict[str, Any]]:
    """Run (or resume) the study: every trial trains ``training.<tuning.agent>`` with the trial's
    values on each fold's training rows and is scored on the fold's validation window only.
    Returns the best parameters (a ``training`` override), the summary, the trial table, the
    optimisation-history figure and the ``tuning_study`` event the registry records."""
    tuning = TuningParams.parse(tuning)
    parameters = {
        "tuning": tuning.to_params(),
        "training": TrainingParams.parse(training).to_params(),
        "feature_engineering": FeatureParams.parse(feature_engineering).to_params(),
        "environment": EnvConfig.parse(environment).to_params(),
        "walk_forward": WalkForwardParams.parse(walk_forward).to_params(),
        "compute": ComputeParams.parse(compute).to_params(),
    }
    result = run_study(primary_prices, parameters)
    s = result.summary
    logger.info(
        "Study %s: %d complete, %d pruned, %d failed; best mean validation Sharpe %.3f with %s "
        "(%.0f s, %s trials/h)",
        s["study_name"],
        s["trials"]["complete"],
        s["trials"]["pruned"],
        s["trials"]["fail"],
        s["best_value"],
        s["best_params"],
        s["wall_time_s"],
        f"{s['trials_per_hour']:.1f}" if s["trials_per_hour"] else "-",
    )
    name = s["study_name"]
    return (
        {f"best_params_{tuning.agent}": result.best_params},
        {f"study_{name}": s},
        {f"trials_{name}": result.trials},
        {f"history_{name}": history_figure(result.trials, s)},
        result.event,
    )
