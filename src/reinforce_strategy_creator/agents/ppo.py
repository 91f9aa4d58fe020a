"""Proximal Policy Optimisation (clipped surrogate), one readable file, CleanRL style.

:func:`train_ppo` trains a population of K >= 1 members (seeds, or seeds x walk-forward folds;
agents/population.py), one member being a plain run. :func:`_train` reads like
SB3's ``learn()``: per update a rollout of every member (one batched forward per vector step)
-> GAE per lane -> ``update_epochs`` passes over each member's own shuffled minibatches of
:func:`ppo_loss` -> per-member gradient clipping -> one :class:`~.population.StackedAdam`
step, then each member's ``RunTracker`` evaluates, logs and decides on early stopping. A
member whose approximate KL exceeds ``target_kl`` is frozen for the rest of that update. The
members are vector envs over the position table (categorical policy) or ``PortfolioCore`` s
(logistic-normal or Dirichlet weights; agents/members.py). The algorithm and its
hyperparameters are described in docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..params.agents import PPOConfig, agent_config
from .buffers import RolloutBuffer
from .errors import check_finite
from .members import actor_critic_population, is_portfolio, member_env
from .population import (
    PopulationTrackers,
    StackedAdam,
    check_members,
    clip_grad_norm_per_member,
    collect_rollout,
    member_major,
    population_gae,
)
from .schedules import annealed_lr
from .seeding import deterministic_torch, resolve_device
from .tracking import TrainResult


def train_ppo(
    member_envs: Sequence,
    config: PPOConfig | dict | None = None,
    *,
    seeds: Sequence[int],
    device: str = "auto",
    eval_fns: Sequence[Callable[[nn.Module], float] | None] | None = None,
    eval_every: int = 10,
    patience: int | None = None,
    progress: bool = True,
    scaler: tuple | None = None,
) -> list[TrainResult]:
    """Train one PPO member per ``(member_envs[k], seeds[k], eval_fns[k])``; one
    :class:`TrainResult` per member, in order (docs/agents.md, "Calling convention").
    ``member_envs`` are vector envs over the position table or ``PortfolioCore`` s (then the
    config's ``distribution`` is the policy over the simplex, and ``scaler`` is required;
    ``members``)."""
    eval_fns = check_members(member_envs, seeds, eval_fns)
    cfg = agent_config("ppo", config, universe=is_portfolio(member_envs))
    for envs in member_envs:
        cfg.check_batch(int(envs.num_envs))
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(member_envs, cfg, list(seeds), dev, eval_fns, eval_every, patience, progress, scaler)


def ppo_loss(pop, cfg: PPOConfig, obs, actions, old_logprob, old_values, adv, returns, valid):
    """Clipped PPO loss on one minibatch per member, for any ``pop.action_dist``
    (``distributions``); returns (loss, pg_loss, v_loss, entropy, approx_kl).

    Every reduction is over the last axis: ``(K, N)`` inputs give ``(K,)`` values, each
    member's own loss with its own advantage normalisation.
    """
    params, mask, value = pop(obs)
    logprob, entropy = pop.action_dist.log_prob_entropy(params, mask, actions)
    n = valid.sum(-1, keepdim=True).clamp_min(1.0)
    logratio = logprob - old_logprob
    ratio = logratio.exp()
    if cfg.norm_adv:
        mean = (adv * valid).sum(-1, keepdim=True) / n
        std = (((adv - mean) ** 2 * valid).sum(-1, keepdim=True) / n).sqrt()
        adv = (adv - mean) / (std + 1e-8)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef))
    pg_loss = ((pg * valid).sum(-1, keepdim=True) / n).squeeze(-1)
    if cfg.clip_vloss:
        v_clipped = old_values + (value - old_values).clamp(-cfg.clip_coef, cfg.clip_coef)
        v = torch.max((value - returns) ** 2, (v_clipped - returns) ** 2)
    else:
        v = (value - returns) ** 2
    v_loss = (0.5 * (v * valid).sum(-1, keepdim=True) / n).squeeze(-1)
    ent = ((entropy * valid).sum(-1, keepdim=True) / n).squeeze(-1)
    loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
    with torch.no_grad():
        approx_kl = ((((ratio - 1) - logratio) * valid).sum(-1, keepdim=True) / n).squeeze(-1)
    return loss, pg_loss, v_loss, ent, approx_kl


def _train(member_envs, cfg, seeds, dev, eval_fns, eval_every, patience, progress, scaler):
    """The PPO loop: the members' lanes and stacked actor-critic as ``members`` chooses them
    for the member envs, then per update a rollout, GAE per lane, ``update_epochs`` of each
    member's minibatches of :func:`ppo_loss`, then evaluation and early stopping per member."""
    env = member_env(member_envs, seeds, dev, cfg)
    members, gens, pop = actor_critic_population(env, seeds, cfg, "ppo", dev, scaler)
    buf = RolloutBuffer(cfg.num_steps, env.num_envs, env.obs_dim, dev, env.action_shape)
    k, b = env.k, env.lanes
    optimizer = StackedAdam(pop.parameters(), k, lr=cfg.learning_rate, eps=1e-5)
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
        desc="ppo",
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
        loss, pg_loss, v_loss, ent = optimise(pop, optimizer, buf, adv, returns, cfg, gens, trackers.active)
        loss_l, pg_l, v_l, ent_l = (x.tolist() for x in (loss, pg_loss, v_loss, ent))
        for i in range(k):
            if bool(trackers.active[i]):
                # a NaN/inf anywhere in the update poisons the weights: the last minibatch's loss shows it
                check_finite(loss_l[i], "ppo", seeds[i], update)
        metrics = [dict(policy_loss=pg_l[i], value_loss=v_l[i], entropy=ent_l[i]) for i in range(k)]
        for i in trackers.end_update(update, update == num_updates, metrics):
            trackers.finish(i, pop)
        if not bool(trackers.active.any()):
            break
    return trackers.close()


def optimise(
    pop,
    optimizer: StackedAdam,
    buf,
    adv,
    returns,
    cfg: PPOConfig,
    gens,
    active,
):
    """``update_epochs`` passes over each member's own shuffled minibatches of :func:`ppo_loss`:
    loss -> :func:`~.population.clip_grad_norm_per_member` -> one optimiser step of the members
    still live; returns the (K,) (loss, pg_loss, v_loss, entropy) of each member's last
    minibatch."""
    k = pop.k
    b_obs = member_major(buf.obs, k)  # (K, T*B, D)
    b_act, b_logp = member_major(buf.actions, k), member_major(buf.logprobs, k)
    b_val, b_valid = member_major(buf.values, k), member_major(buf.valid, k)
    b_adv, b_ret = member_major(adv, k), member_major(returns, k)
    batch = b_logp.shape[1]
    mb_size = max(1, batch // cfg.num_minibatches)
    rows = torch.arange(k, device=b_obs.device)[:, None]
    live = active.to(b_obs.device)  # members still updating in this update (target_kl)
    last = None
    for _epoch in range(cfg.update_epochs):
        # a member draws its permutation only while it updates, as it would alone
        idle = torch.arange(batch)
        perm = torch.stack(
            [torch.randperm(batch, generator=g) if bool(live[i]) else idle for i, g in enumerate(gens)]
        ).to(b_obs.device)
        for start in range(0, batch, mb_size):
            mb = perm[:, start : start + mb_size]
            out = ppo_loss(
                pop,
                cfg,
                b_obs[rows, mb],
                b_act[rows, mb],
                b_logp[rows, mb],
                b_val[rows, mb],
                b_adv[rows, mb],
                b_ret[rows, mb],
                b_valid[rows, mb],
            )
            loss, approx_kl = out[0], out[4]
            optimizer.zero_grad()
            loss.sum().backward()
            clip_grad_norm_per_member(optimizer.params, cfg.max_grad_norm)
            optimizer.step(live)
            # a frozen member keeps the metrics of its last real minibatch
            cur = torch.stack([x.detach() for x in out[:4]])
            last = cur if last is None else torch.where(live, cur, last)
            if cfg.target_kl is not None:
                live = live & ~(approx_kl > cfg.target_kl)
                if not bool(live.any()):
                    return tuple(last)
    return tuple(last)
