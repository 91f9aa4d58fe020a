"""A2C for portfolios: the Dirichlet actor-critic of :mod:`.policies` on ``PortfolioCore``, one file.

Per update: ``ppo.collect_rollout`` (``num_steps`` Dirichlet-sampled steps of every member) ->
GAE (``gae_lambda = 1`` gives n-step returns) -> ONE gradient step on
:func:`portfolio_a2c_loss`, then each member's ``RunTracker`` evaluates, logs and early-stops.
Hyperparameters are the single-asset ``agents.a2c.A2CConfig``. Members (seeds) train stacked
as in :mod:`.ppo` (``StackedRMSprop`` / ``StackedAdam`` per-member steps); a member's weights
do not depend on the other members.
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
    collect_rollout,
    masked_mean,
    policy_terms,
    rollout_buffer,
)

__all__ = ["portfolio_a2c_loss", "train_portfolio_a2c"]


def portfolio_a2c_loss(pop, cfg: A2CConfig, obs, actions, adv, returns, valid):
    """``agents.a2c.a2c_loss`` with Dirichlet log-probs; reductions over the last axis (one loss
    per member for (K, M) inputs). Returns (loss, pg_loss, v_loss, entropy)."""
    logprob, entropy, values = policy_terms(pop, obs, actions)
    a = adv
    if cfg.norm_adv:
        mean = masked_mean(a, valid).unsqueeze(-1)
        a = (a - mean) / (masked_mean((a - mean) ** 2, valid).sqrt().unsqueeze(-1) + 1e-8)
    pg_loss = -masked_mean(a * logprob, valid)
    v_loss = 0.5 * masked_mean((values - returns) ** 2, valid)
    ent = masked_mean(entropy, valid)
    return pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss, pg_loss, v_loss, ent


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
        loss_fn=portfolio_a2c_loss,
        collect_fn=collect_rollout,
    )
