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

from ..agents.a2c import A2CConfig
from ..agents.errors import check_finite
from ..agents.population import (
    PopulationTrackers,
    StackedAdam,
    StackedRMSprop,
    check_members,
    member_major,
    population_gae,
)
from ..agents.schedules import annealed_lr
from ..agents.seeding import deterministic_torch, resolve_device
from ..agents.tracking import TrainResult
from ..env.portfolio import PortfolioCore
from .ppo import (
    PortfolioLanes,
    actor_critic_members,
    clip_grad_norm_members,
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
    k, b = env.k, env.lanes
    members, gens, pop = actor_critic_members(env, seeds, cfg, "a2c", scaler, dev)
    if cfg.optimizer == "rmsprop":
        optimizer = StackedRMSprop(
            pop.parameters(), k, lr=cfg.learning_rate, alpha=cfg.rms_alpha, eps=cfg.eps
        )
    else:
        optimizer = StackedAdam(pop.parameters(), k, lr=cfg.learning_rate, eps=cfg.eps)
    buf = rollout_buffer(cfg.num_steps, env, dev)
    batch = cfg.num_steps * b
    num_updates = max(1, cfg.total_steps // batch)
    trackers = PopulationTrackers(
        members,
        b,
        dev,
        total_steps=num_updates * batch,
        eval_fns=eval_fns,
        eval_every=eval_every,
        patience=patience,
        progress=progress,
        log_every=cfg.log_every,
        desc="portfolio a2c",
        seeds=seeds,
    )
    obs = env.reset()

    for update in range(1, num_updates + 1):
        if cfg.anneal_lr:
            optimizer.lr = annealed_lr(cfg.learning_rate, update, num_updates)
        obs = collect_rollout(env, pop, buf, trackers, obs, gens)
        adv, returns = population_gae(pop, buf, cfg, k)
        loss, pg_loss, v_loss, ent = portfolio_a2c_loss(
            pop,
            cfg,
            member_major(buf.obs, k),
            member_major(buf.actions, k),
            member_major(adv, k),
            member_major(returns, k),
            member_major(buf.valid, k),
        )
        optimizer.zero_grad()
        loss.sum().backward()
        clip_grad_norm_members(optimizer.params, cfg.max_grad_norm)
        optimizer.step(trackers.active)
        loss_l, pg_l, v_l, ent_l = (x.tolist() for x in (loss, pg_loss, v_loss, ent))
        for i in range(k):
            if bool(trackers.active[i]):
                check_finite(loss_l[i], "a2c", seeds[i], update)
        metrics = [dict(policy_loss=pg_l[i], value_loss=v_l[i], entropy=ent_l[i]) for i in range(k)]
        for i in trackers.end_update(update, update == num_updates, metrics):
            trackers.finish(i, pop)
        if not bool(trackers.active.any()):
            break
    return trackers.close()
