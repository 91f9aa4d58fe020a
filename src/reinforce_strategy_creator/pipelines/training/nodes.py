"""Pure node functions of the ``training`` stage: data and parameters in, objects out.

The real work is in :mod:`reinforce_strategy_creator.training` (plain library); saving is
the catalog's job (``PolicyArtifactDataset``, Parquet, ``MatplotlibDataset``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ...artifacts import PolicyBundle
from ...compute import shared_executor
from ...env import EnvConfig
from ...evaluation.figures import learning_curves_figure
from ...params.compute import ComputeParams
from ...params.features import FeatureParams
from ...params.training import TrainingParams
from ...training import train_agent


def train_node(agent: str) -> Callable[..., tuple[PolicyBundle, pd.DataFrame]]:
    """The training node of one agent (the ``training.<agent>`` block of the parameters)."""

    def train(
        model_input_train: pd.DataFrame,
        model_input_validation: pd.DataFrame,
        feature_scaler: dict[str, Any],
        environment: EnvConfig,
        training: TrainingParams,
        feature_engineering: FeatureParams,
        compute: ComputeParams | None = None,
    ) -> tuple[PolicyBundle, pd.DataFrame]:
        """Train the agent over its seeds with validation checkpoint selection. Every agent block
        was validated when the run started, so a bad parameter of any agent stops the run before
        any agent trains; the feature specification is fingerprinted into the policy spec. The
        seeds run as jobs on the ``compute`` backend (one executor shared by the run's nodes)."""
        plan = TrainingParams.parse(training).plan(agent)
        return train_agent(
            model_input_train,
            model_input_validation,
            feature_scaler,
            EnvConfig.parse(environment),
            plan,
            feature_spec=FeatureParams.parse(feature_engineering).features,
            executor=shared_executor(compute),
        )

    train.__qualname__ = f"train[{agent}]"
    return train


def plot_learning_curve(history: pd.DataFrame) -> Figure:
    """Episode return and validation Sharpe (``eval_score``) against env steps, one line per seed."""
    histories = {f"seed {int(s)}": h.drop(columns="seed") for s, h in history.groupby("seed", sort=True)}
    fig = learning_curves_figure(histories, x="step", y=("episode_return", "eval_score"))
    axes = fig.get_axes()
    axes[0].set_title("training episode return and validation Sharpe (eval_score) per seed")
    if len(axes) > 1:
        axes[1].set_ylabel("validation Sharpe")
    return fig
