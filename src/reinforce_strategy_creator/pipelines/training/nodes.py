"""Pure node functions of the ``training`` stage: data and parameters in, objects out.

The real work is in :mod:`reinforce_strategy_creator.training` (plain library); saving is
the catalog's job (``PolicyArtifactDataset``, Parquet, ``MatplotlibDataset``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ...artifacts import PolicyBundle
from ...evaluation.figures import learning_curves_figure
from ...training import train_agent


def train(
    model_input_train: pd.DataFrame,
    model_input_validation: pd.DataFrame,
    feature_scaler: Mapping[str, Any],
    environment: Mapping[str, Any],
    common: Mapping[str, Any],
    agent: Mapping[str, Any],
    training: Mapping[str, Any],
    feature_spec: Mapping[str, Any] | None = None,
) -> tuple[PolicyBundle, pd.DataFrame]:
    """Train one agent over ``common.seeds`` with validation checkpoint selection.

    ``training`` is the whole ``training`` parameter block: every agent's block is validated
    before this one trains, so a bad parameter of any agent fails the run before training.
    ``feature_spec`` is fingerprinted into the policy spec (provenance checked downstream).
    """
    return train_agent(model_input_train, model_input_validation, feature_scaler, environment, common, agent,
                       training=training, feature_spec=feature_spec)


def plot_learning_curve(history: pd.DataFrame, agent: Mapping[str, Any]) -> Figure:
    """Episode return and validation Sharpe (``eval_score``) against env steps, one line per seed."""
    name = str(dict(agent).get("algorithm", "agent"))
    histories = {f"{name} seed {int(s)}": h.drop(columns="seed") for s, h in history.groupby("seed", sort=True)}
    fig = learning_curves_figure(histories, x="step", y=("episode_return", "eval_score"))
    axes = fig.get_axes()
    axes[0].set_title(f"{name}: training episode return and validation Sharpe (eval_score) per seed")
    if len(axes) > 1:
        axes[1].set_ylabel("validation Sharpe")
    return fig
