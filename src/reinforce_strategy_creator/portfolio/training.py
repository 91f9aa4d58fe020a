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

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from ..agents import ALGORITHMS
from ..agents.tracking import TrainResult
from ..artifacts import PolicyBundle
from ..env.portfolio import PortfolioConfig, PortfolioCore, PortfolioInputError
from ..evaluation.metrics import bar_returns, infer_periods_per_year, is_ruined, performance_metrics
from ..params.agents import PORTFOLIO_AGENT_CONFIGS, AgentConfig
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
    """The validation Sharpe of ``training.validation_sharpe`` for one equity curve: -inf once
    ruined, 0.0 for a curve that never moves, else the annualised Sharpe of its bar returns."""
    if is_ruined(equity):
        return -math.inf
    r = bar_returns(pd.Series(np.asarray(equity, dtype=np.float64), index=dates))
    if np.all(r.to_numpy() == 0.0):
        return 0.0
    s = performance_metrics(r, periods_per_year=periods_per_year)["sharpe"]
    return float(s) if math.isfinite(s) else 0.0


def portfolio_validation_sharpe(
    policy: nn.Module, panel: PortfolioPanel, config: PortfolioConfig, periods_per_year: float | None = None
) -> float:
    """Annualised Sharpe of ``policy.decide`` replayed deterministically over ``panel`` (its first
    ``window - 1`` rows are history) with the costs and capital of ``config``."""
    ppy = periods_per_year or infer_periods_per_year(panel.dates)
    run = replay_weights(panel, config, policy.decide, num_lanes=1)
    return run_sharpe(run.equity[0], run.dates, ppy)


# --------------------------------------------------------------------------- training
def _check_inputs(algorithm, train, validation, env: PortfolioConfig, seeds, num_envs) -> None:
    if algorithm not in PORTFOLIO_AGENT_CONFIGS:
        raise PortfolioInputError(
            f"algorithm={algorithm!r} unknown; choose one of {sorted(PORTFOLIO_AGENT_CONFIGS)}"
        )
    if not isinstance(env, PortfolioConfig):
        raise PortfolioInputError(f"env must be a PortfolioConfig, got {type(env).__name__}")
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
    env: PortfolioConfig,
    seeds: Sequence[int],
    *,
    num_envs: int = 64,
    eval_every: int = 10,
    patience: int | None = None,
    population: bool = True,
    progress: bool = False,
    score_fn: Callable[[nn.Module], float] | None = None,
) -> list[TrainResult]:
    """Train ``algorithm`` ('ppo', 'a2c', 'dqn') once per seed; one ``TrainResult`` per seed, in order.

    ``config``: the single-asset block (``PPOConfig`` / ``A2CConfig`` / ``DQNConfig``; for PPO also
    ``ppo.PortfolioPPOConfig``, which adds the action distribution) or a dict of
    its fields). Each member trains on its own ``PortfolioCore`` over ``train`` (``num_envs`` lanes,
    episodes of ``env.episode_length`` from random starts drawn by its seed). With ``validation``
    every ``eval_every`` updates (DQN: iterations) a checkpoint is scored by
    :func:`portfolio_validation_sharpe` (or ``score_fn``), ``patience`` evaluations without
    improvement stop the member, and its best checkpoint is returned. ``population=True`` trains
    the seeds as one population (stacked parameters, one batched forward; a member's weights do
    not depend on the other members), ``False`` one seed after the other: the same weights.
    """
    seeds = list(seeds)
    _check_inputs(algorithm, train, validation, env, seeds, num_envs)
    config_cls, trainer = PORTFOLIO_AGENT_CONFIGS[algorithm], ALGORITHMS[algorithm][1]
    if isinstance(config, config_cls):
        cfg = config
    elif isinstance(config, AgentConfig):
        cfg = config_cls.from_params(config.to_dict())
    else:
        cfg = config_cls.from_params(config)
    scaler = fit_feature_scaler(train, slice(None))  # the training rows only
    eval_fn = score_fn
    if eval_fn is None and validation is not None:
        ppy = infer_periods_per_year(validation.dates)

        def eval_fn(policy: nn.Module) -> float:
            return portfolio_validation_sharpe(policy, validation, env, ppy)

    def cores(member_seeds):
        return [
            PortfolioCore(train.close, train.features, train.tickers, env, num_envs=num_envs, seed=int(s))
            for s in member_seeds
        ]

    kw = dict(scaler=scaler, device=env.device, eval_every=eval_every, patience=patience, progress=progress)
    if population:
        return trainer(
            cores(seeds), cfg, seeds=[int(s) for s in seeds], eval_fns=[eval_fn] * len(seeds), **kw
        )
    out: list[TrainResult] = []
    for s in seeds:
        out += trainer(cores([s]), cfg, seeds=[int(s)], eval_fns=[eval_fn], **kw)
    return out


# --------------------------------------------------------------------------- artifacts
def portfolio_bundle(
    results: Sequence[TrainResult],
    seeds: Sequence[int],
    panel: PortfolioPanel,
    env: PortfolioConfig,
    extra: Mapping[str, Any] | None = None,
) -> PolicyBundle:
    """The trained members as one ``PolicyBundle`` (spec = the policy's JSON spec + tickers,
    feature names, window, costs, seeds, validation scores, best seed)."""
    if len(results) != len(seeds) or not results:
        raise PortfolioInputError(
            f"portfolio_bundle needs one result per seed: {len(results)} vs {len(seeds)}"
        )
    scores = {int(s): float(r.best_score) for s, r in zip(seeds, results, strict=True)}
    finite = {s: v for s, v in scores.items() if math.isfinite(v)}
    best = max(finite, key=lambda s: (finite[s], -s)) if finite else int(seeds[0])
    spec = dict(results[0].policy.spec)
    spec.update(
        {
            "tickers": list(panel.tickers),
            "feature_names": list(panel.feature_names),
            "window": env.window,
            "positions": [],  # single-asset field; a portfolio acts in weights (see "kind")
            "environment": {
                k: getattr(env, k)
                for k in (
                    "initial_capital",
                    "commission_bps",
                    "slippage_bps",
                    "borrow_bps_per_bar",
                    "long_only",
                )
            },
            "seeds": [int(s) for s in seeds],
            "validation_scores": {str(s): (v if math.isfinite(v) else None) for s, v in scores.items()},
            "best_seed": int(best),
            **dict(extra or {}),
        }
    )
    states = {
        int(s): {k: v.detach().to("cpu").clone() for k, v in r.policy.state_dict().items()}
        for s, r in zip(seeds, results, strict=True)
    }
    return PolicyBundle(spec=spec, state_dicts=states)
