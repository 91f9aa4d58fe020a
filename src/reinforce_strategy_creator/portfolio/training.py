"""Train portfolio agents over several seeds with validation checkpointing (docs/agents.md).

:func:`train_portfolio_members` trains one member per seed on the TRAIN panel (feature scaler
fit on it alone), scores checkpoints every ``eval_every`` updates by :func:`portfolio_validation_sharpe`
(the deterministic replay ``portfolio.replay.replay_weights`` over the VALIDATION panel, whose first
``window - 1`` rows are history; the Sharpe of ``training.validation_sharpe``: same metric
functions, 0 for a book that never moves, -inf for a ruined account), early-stops after ``patience``
evaluations without improvement and keeps the best checkpoint in ``TrainResult.policy``.
:func:`portfolio_bundle` turns the results into the project's safe artifact
(``artifacts.PolicyBundle``: safetensors + JSON, no pickles).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from ..agents import ALGORITHMS
from ..agents.tracking import TrainResult
from ..artifacts import PolicyBundle
from ..env.config import EnvConfig
from ..env.portfolio import PortfolioCore, PortfolioInputError
from ..evaluation.metrics import infer_periods_per_year
from ..params.agents import AGENT_CONFIGS, agent_config
from ..training import cpu_state, equity_sharpe, seed_selection, train_members
from .features import fit_feature_scaler
from .panel import PortfolioPanel
from .replay import replay_weights

__all__ = [
    "portfolio_bundle",
    "portfolio_validation_sharpe",
    "run_sharpe",
    "train_portfolio_members",
]


# --------------------------------------------------------------------------- validation
def run_sharpe(equity: np.ndarray, dates: pd.DatetimeIndex, periods_per_year: float) -> float:
    """``training.equity_sharpe`` of a replay's equity curve (an array) over ``dates``."""
    return equity_sharpe(pd.Series(np.asarray(equity, dtype=np.float64), index=dates), periods_per_year)


def portfolio_validation_sharpe(
    policy: nn.Module, panel: PortfolioPanel, config: EnvConfig, periods_per_year: float | None = None
) -> float:
    """Annualised Sharpe of ``policy.decide`` replayed deterministically over ``panel`` (its first
    ``window - 1`` rows are history) with the costs and capital of ``config``."""
    ppy = periods_per_year or infer_periods_per_year(panel.dates)
    run = replay_weights(panel, config, policy.decide, num_lanes=1)
    return run_sharpe(run.equity[0], run.dates, ppy)


# --------------------------------------------------------------------------- training
def _check_inputs(algorithm, train, validation, env: EnvConfig, seeds, num_envs) -> None:
    if algorithm not in AGENT_CONFIGS:
        raise PortfolioInputError(f"algorithm={algorithm!r} unknown; choose one of {sorted(AGENT_CONFIGS)}")
    if not isinstance(env, EnvConfig):
        raise PortfolioInputError(f"env must be an EnvConfig, got {type(env).__name__}")
    if not isinstance(train, PortfolioPanel):
        raise PortfolioInputError(f"train must be a PortfolioPanel, got {type(train).__name__}")
    if len(seeds) == 0:
        raise PortfolioInputError("seeds is empty; give at least one int seed (e.g. seeds=[0])")
    bad = [s for s in seeds if not isinstance(s, (int, np.integer)) or isinstance(s, bool)]
    if bad or len(set(int(s) for s in seeds)) != len(seeds):
        raise PortfolioInputError(f"seeds must be distinct ints, got {list(seeds)!r}")
    if not isinstance(num_envs, int) or num_envs < 1:
        raise PortfolioInputError(f"num_envs must be a positive int, got {num_envs!r}")
    W, E = env.window, env.episode_length
    need = W + (E if E is not None else 1)
    if train.n_bars < need:
        what = f"window={W} + episode_length={E}" if E is not None else f"window={W} + 1"
        raise PortfolioInputError(
            f"train panel has {train.n_bars} rows but env {what} needs at least {need}; "
            "use a longer training period, a smaller env.window or a shorter env.episode_length"
        )
    if validation is not None:
        if not isinstance(validation, PortfolioPanel):
            raise PortfolioInputError(
                f"validation must be a PortfolioPanel or None, got {type(validation).__name__}"
            )
        if validation.n_bars < W + 1:
            raise PortfolioInputError(
                f"validation panel has {validation.n_bars} rows but env.window={W} needs at least {W + 1} "
                f"({W - 1} history rows, then at least two bars to trade); use a longer validation period"
            )
        if validation.tickers != train.tickers or validation.n_features != train.n_features:
            raise PortfolioInputError(
                f"validation panel has tickers {list(validation.tickers)} and {validation.n_features} "
                "features "
                f"but train has {list(train.tickers)} and {train.n_features}: they must match"
            )


def train_portfolio_members(
    algorithm: str,
    config: Any,
    train: PortfolioPanel,
    validation: PortfolioPanel | None,
    env: EnvConfig,
    seeds: Sequence[int],
    *,
    num_envs: int = 64,
    eval_every: int = 10,
    patience: int | None = None,
    population: bool = True,
    progress: bool = False,
    score_fn: Callable[[nn.Module], float] | None = None,
    agent: str | None = None,
) -> list[TrainResult]:
    """Train ``algorithm`` ('ppo', 'a2c', 'dqn') once per seed; one ``TrainResult`` per seed, in order.

    ``config``: the algorithm's block (``params.agents.AGENT_CONFIGS``, with its universe fields:
    the action distribution and reward baseline) or a dict of its fields. Each member trains
    on its own ``PortfolioCore`` over ``train`` (``num_envs`` lanes, episodes of
    ``env.episode_length`` from random starts drawn by its seed). With ``validation`` every
    ``eval_every`` updates (DQN: iterations) a checkpoint is scored by
    :func:`portfolio_validation_sharpe` (or ``score_fn``), ``patience`` evaluations without
    improvement stop the member, and its best checkpoint is returned. ``population=True`` trains
    the seeds as one population (stacked parameters, one batched forward; a member's weights do
    not depend on the other members), ``False`` one seed after the other: the same weights
    (``training.train_members`` with ``agents.train_<algorithm>`` on ``PortfolioCore`` members).
    A divergence is reported under ``agent`` (default: the algorithm).
    """
    seeds = list(seeds)
    _check_inputs(algorithm, train, validation, env, seeds, num_envs)
    cfg, trainer = agent_config(algorithm, config, universe=True), ALGORITHMS[algorithm][1]
    scaler = fit_feature_scaler(train, slice(None))  # the training rows only
    eval_fn = score_fn
    if eval_fn is None and validation is not None:
        ppy = infer_periods_per_year(validation.dates)

        def eval_fn(policy: nn.Module) -> float:
            return portfolio_validation_sharpe(policy, validation, env, ppy)

    def core(seed: int) -> Callable[[], PortfolioCore]:
        return lambda: PortfolioCore(
            train.close, train.features, train.tickers, env, num_envs=num_envs, seed=seed
        )

    return train_members(
        trainer,
        [(core(int(s)), int(s), eval_fn) for s in seeds],
        population=population,
        agent=agent or algorithm,
        config=cfg,
        scaler=scaler,
        device=env.resolve_device(),
        eval_every=eval_every,
        patience=patience,
        progress=progress,
    )


# --------------------------------------------------------------------------- artifacts
def portfolio_bundle(
    results: Sequence[TrainResult],
    seeds: Sequence[int],
    panel: PortfolioPanel,
    env: EnvConfig,
    extra: Mapping[str, Any] | None = None,
) -> PolicyBundle:
    """The trained members as one ``PolicyBundle`` (spec = the policy's JSON spec + tickers,
    feature names, window, the account (``EnvConfig.universe_params``, as the walk-forward's
    bundles record it), seeds, validation scores, best seed)."""
    if len(results) != len(seeds) or not results:
        raise PortfolioInputError(
            f"portfolio_bundle needs one result per seed: {len(results)} vs {len(seeds)}"
        )
    scores = {int(s): float(r.best_score) for s, r in zip(seeds, results, strict=True)}
    spec = dict(results[0].policy.spec)
    spec.update(
        {
            "tickers": list(panel.tickers),
            "feature_names": list(panel.feature_names),
            "window": env.window,
            "positions": [],  # single-asset field; a portfolio acts in weights (see "kind")
            "portfolio_environment": env.universe_params(),
            **seed_selection([int(s) for s in seeds], scores),
            **dict(extra or {}),
        }
    )
    states = {int(s): cpu_state(r.policy) for s, r in zip(seeds, results, strict=True)}
    return PolicyBundle(spec=spec, state_dicts=states)
