"""A2C for portfolios: configuration of ``agents.a2c.run_a2c_population`` on ``PortfolioCore``.

The loop, loss, clipping and optimisers are the single-asset A2C's; what is portfolio here is
the env (:class:`.ppo.PortfolioLanes`) and the policy (``PortfolioActorCritic``: the shared
per-asset encoder with a logistic-normal or Dirichlet distribution over the weights,
``agents.distributions``). Hyperparameters are ``agents.a2c.A2CConfig``; a member's weights do
not depend on the other members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from ..agents.a2c import A2CConfig, run_a2c_population
from ..agents.population import check_members
from ..agents.seeding import deterministic_torch, resolve_device
from ..agents.tracking import TrainResult
from ..env.portfolio import PortfolioCore
from .ppo import (
    PortfolioLanes,
    actor_critic_members,
    rollout_buffer,
)

__all__ = ["train_portfolio_a2c"]


def train_portfolio_a2c(
    cores: Sequence[PortfolioCore],
    config: A2CConfig | dict | None = None,
    *,
    seeds: Sequence[int],
    scaler: tuple,
    device: str = "cpu",
    eval_fns: Sequence[Callable[[nn.Module], float] | None] | None = None,
    eval_every: int = 100,
    patience: int | None = None,
    progress: bool = False,
) -> list[TrainResult]:
    """As :func:`.ppo.train_portfolio_ppo`, with A2C updates."""
    cfg = config if isinstance(config, A2CConfig) else A2CConfig.from_params(config)
    eval_fns = check_members(cores, [int(s) for s in seeds], eval_fns)
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(
            cores, cfg, [int(s) for s in seeds], scaler, dev, eval_fns, eval_every, patience, progress
        )


def _train(cores, cfg: A2CConfig, seeds, scaler, dev, eval_fns, eval_every, patience, progress):
    env = PortfolioLanes(cores, seeds, dev)
    members, gens, pop = actor_critic_members(env, seeds, cfg, "a2c", scaler, dev)
    buf = rollout_buffer(cfg.num_steps, env, dev)
    return run_a2c_population(
        env,
        members,
        gens,
        pop,
        buf,
        cfg,
        seeds,
        dev,
        eval_fns,
        eval_every,
        patience,
        progress,
        desc="portfolio a2c",
    )
