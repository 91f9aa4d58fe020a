"""Advantage Actor-Critic (synchronous A2C), one readable file.

:func:`train_a2c` trains a population of K >= 1 members (agents/population.py), one member
being a plain run. :func:`_train`: per update one batched rollout of every member
-> GAE per lane (``gae_lambda=1`` gives n-step returns) -> ONE gradient step of each member's
:func:`a2c_loss` over its whole rollout, per-member gradient clipping and a per-member RMSprop
(or Adam) step, then each member's ``RunTracker`` evaluates, logs and decides on early
stopping. The members are vector envs or ``PortfolioCore`` s (agents/members.py). The
algorithm and its hyperparameters are described in docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from ..params.agents import A2CConfig, agent_config
from .buffers import RolloutBuffer
from .errors import check_finite
from .members import actor_critic_population, is_portfolio, member_env
from .population import (
    PopulationTrackers,
    StackedAdam,
    StackedRMSprop,
    check_members,
    clip_grad_norm_per_member,
    collect_rollout,
    member_major,
    population_gae,
)
from .schedules import annealed_lr
from .seeding import deterministic_torch, resolve_device
from .tracking import TrainResult


def train_a2c(
    member_envs: Sequence,
    config: A2CConfig | dict | None = None,
    *,
    seeds: Sequence[int],
    device: str = "auto",
    eval_fns: Sequence[Callable[[nn.Module], float] | None] | None = None,
    eval_every: int = 100,
    patience: int | None = None,
    progress: bool = True,
    scaler: tuple | None = None,
) -> list[TrainResult]:
    """Train one A2C member per ``(member_envs[k], seeds[k], eval_fns[k])``; one
    :class:`TrainResult` per member, in order (docs/agents.md, "Calling convention").
    ``member_envs`` are vector envs over the position table or ``PortfolioCore`` s (then
    ``scaler`` is required; ``members``)."""
    cfg = agent_config("a2c", config, universe=is_portfolio(member_envs))
    eval_fns = check_members(member_envs, seeds, eval_fns)
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(member_envs, cfg, list(seeds), dev, eval_fns, eval_every, patience, progress, scaler)


def a2c_loss(pop, cfg: A2CConfig, obs, actions, adv, returns, valid):
    """A2C loss over each member's whole rollout, for any ``pop.action_dist``
    (``distributions``); returns (loss, pg_loss, v_loss, entropy).

    Every reduction is over the last axis: ``(K, N)`` transitions give ``(K,)``, one loss per
    member.
    """
    params, mask, values = pop(obs)
    logprob, entropy = pop.action_dist.log_prob_entropy(params, mask, actions)
    n = valid.sum(-1, keepdim=True).clamp_min(1.0)
    a = adv
    if cfg.norm_adv:
        mean = (a * valid).sum(-1, keepdim=True) / n
        a = (a - mean) / ((((a - mean) ** 2 * valid).sum(-1, keepdim=True) / n).sqrt() + 1e-8)
    pg_loss = (-(a * logprob * valid).sum(-1, keepdim=True) / n).squeeze(-1)
    v_loss = (0.5 * (((values - returns) ** 2) * valid).sum(-1, keepdim=True) / n).squeeze(-1)
    ent = ((entropy * valid).sum(-1, keepdim=True) / n).squeeze(-1)
    loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
    return loss, pg_loss, v_loss, ent


def stacked_optimizer(pop, cfg: A2CConfig):
    """The members' RMSprop (``cfg.optimizer == "rmsprop"``) or Adam over the stacked parameters."""
    if cfg.optimizer == "rmsprop":
        return StackedRMSprop(pop.parameters(), pop.k, lr=cfg.learning_rate, alpha=cfg.rms_alpha, eps=cfg.eps)
    return StackedAdam(pop.parameters(), pop.k, lr=cfg.learning_rate, eps=cfg.eps)


def _train(member_envs, cfg, seeds, dev, eval_fns, eval_every, patience, progress, scaler):
    """The A2C loop: the members' lanes and stacked actor-critic as ``members`` chooses them
    for the member envs, then per update a rollout, GAE per lane, one gradient step of every
    member's :func:`a2c_loss` over its whole rollout, then evaluation and early stopping per
    member."""
    env = member_env(member_envs, seeds, dev, cfg)
    members, gens, pop = actor_critic_population(env, seeds, cfg, "a2c", dev, scaler)
    buf = RolloutBuffer(cfg.num_steps, env.num_envs, env.obs_dim, dev, env.action_shape)
    k, b = env.k, env.lanes
    optimizer = stacked_optimizer(pop, cfg)
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
        desc="a2c",
        seeds=seeds,
        score_start=cfg.start_at_benchmark,
        start_handicap=cfg.benchmark_margin,
    )
    obs = env.reset()

    for update in range(1, num_updates + 1):
        if cfg.anneal_lr:
            optimizer.lr = annealed_lr(cfg.learning_rate, update, num_updates)
        obs = collect_rollout(env, pop, buf, trackers, obs, gens)
        adv, returns = population_gae(pop, buf, cfg, k)
        loss, pg_loss, v_loss, ent = update_step(pop, optimizer, cfg, buf, adv, returns, trackers.active)
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


def update_step(pop, optimizer, cfg: A2CConfig, buf: RolloutBuffer, adv, returns, active):
    """One gradient step of every member's :func:`a2c_loss` over its whole rollout: loss ->
    :func:`~.population.clip_grad_norm_per_member` -> one optimiser step of the ``active``
    members; returns the (K,) (loss, pg_loss, v_loss, entropy)."""
    k = pop.k
    loss, pg_loss, v_loss, ent = a2c_loss(
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
    clip_grad_norm_per_member(optimizer.params, cfg.max_grad_norm)
    optimizer.step(active)
    return loss, pg_loss, v_loss, ent
