"""PPO for a population: K members (seeds / folds) trained as one; see agents/population.py.

The loop is ``ppo._train``'s, with every tensor carrying a member axis: the rollout buffer
holds K*B lanes (member-major), advantages are GAE per lane, and ``_optimise`` runs each
member's own shuffled minibatches (its own generator, the same permutation the single-model
trainer would draw) through the shared :func:`~.ppo.ppo_loss` (per-member reductions), then
per-member gradient clipping and one :class:`~.population.StackedAdam` step. A member whose
approximate KL exceeds ``target_kl`` is frozen for the rest of that update, as the single
model would break out of its epoch loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .buffers import RolloutBuffer
from .errors import check_finite
from .population import (
    MemberEnvs,
    PopulationActorCritic,
    PopulationTrackers,
    StackedAdam,
    build_actor_critic_members,
    check_members,
    clip_grad_norm_per_member,
    collect_rollout,
    member_major,
    population_gae,
)
from .ppo import PPOConfig, ppo_loss
from .schedules import annealed_lr
from .seeding import deterministic_torch, resolve_device
from .tracking import TrainResult


def train_ppo_population(
    member_envs: Sequence,
    config: PPOConfig | dict | None = None,
    *,
    seeds: Sequence[int],
    device: str = "auto",
    eval_fns: Sequence[Callable[[nn.Module], float] | None] | None = None,
    eval_every: int = 10,
    patience: int | None = None,
    progress: bool = True,
) -> list[TrainResult]:
    """Train one PPO member per ``(member_envs[k], seeds[k], eval_fns[k])``; one
    :class:`TrainResult` per member, in order, with the contract of :func:`~.ppo.train_ppo`."""
    cfg = config if isinstance(config, PPOConfig) else PPOConfig.from_params(config)
    eval_fns = check_members(member_envs, seeds, eval_fns)
    for envs in member_envs:
        cfg.check_batch(int(envs.num_envs))
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(member_envs, cfg, list(seeds), dev, eval_fns, eval_every, patience, progress)


def _train(member_envs, cfg: PPOConfig, seeds, dev, eval_fns, eval_every, patience, progress):
    env = MemberEnvs(member_envs, seeds, dev)
    k, b = env.k, env.lanes
    members, gens = build_actor_critic_members(
        seeds, env.obs_dim, env.n_actions, cfg.hidden_sizes, cfg.activation, "ppo", dev
    )
    pop = PopulationActorCritic(members)
    buf = RolloutBuffer(cfg.num_steps, k * b, env.obs_dim, dev)
    return run_ppo_population(
        env, members, gens, pop, buf, cfg, seeds, dev, eval_fns, eval_every, patience, progress, desc="ppo"
    )


def run_ppo_population(
    env,
    members,
    gens,
    pop,
    buf: RolloutBuffer,
    cfg: PPOConfig,
    seeds,
    dev,
    eval_fns,
    eval_every,
    patience,
    progress,
    *,
    desc: str,
    loss_fn: Callable = ppo_loss,
    clip_fn: Callable = clip_grad_norm_per_member,
    collect_fn: Callable = collect_rollout,
):
    """The population's PPO loop on any member-major env (``reset``/``step``, ``k``, ``lanes``):
    per update ``collect_fn`` a rollout, GAE per lane, ``update_epochs`` of each member's
    minibatches through ``loss_fn`` (per-member reductions) and ``clip_fn``, then evaluation and
    early stopping per member. The single-asset population and the portfolio trainer
    (``portfolio/ppo.py``: its own rollout, loss and clipping) both run it."""
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
        desc=desc,
        seeds=seeds,
    )
    obs = env.reset()

    for update in range(1, num_updates + 1):
        if cfg.anneal_lr:
            optimizer.lr = annealed_lr(cfg.learning_rate, update, num_updates)
        obs = collect_fn(env, pop, buf, trackers, obs, gens)
        adv, returns = population_gae(pop, buf, cfg, k)
        loss, pg_loss, v_loss, ent = optimise_population(
            pop, optimizer, buf, adv, returns, cfg, gens, trackers.active, loss_fn, clip_fn
        )
        loss_l, pg_l, v_l, ent_l = (x.tolist() for x in (loss, pg_loss, v_loss, ent))
        for i in range(k):
            if bool(trackers.active[i]):
                check_finite(loss_l[i], "ppo", seeds[i], update)
        metrics = [dict(policy_loss=pg_l[i], value_loss=v_l[i], entropy=ent_l[i]) for i in range(k)]
        for i in trackers.end_update(update, update == num_updates, metrics):
            trackers.finish(i, pop)
        if not bool(trackers.active.any()):
            break
    return trackers.close()


def optimise_population(
    pop,
    optimizer: StackedAdam,
    buf,
    adv,
    returns,
    cfg: PPOConfig,
    gens,
    active,
    loss_fn: Callable = ppo_loss,
    clip_fn: Callable = clip_grad_norm_per_member,
):
    """``update_epochs`` passes over each member's own shuffled minibatches through ``loss_fn``;
    returns the (K,) (loss, pg_loss, v_loss, entropy) of each member's last minibatch."""
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
        # a member draws its permutation only while it updates, as the single model would
        idle = torch.arange(batch)
        perm = torch.stack(
            [torch.randperm(batch, generator=g) if bool(live[i]) else idle for i, g in enumerate(gens)]
        ).to(b_obs.device)
        for start in range(0, batch, mb_size):
            mb = perm[:, start : start + mb_size]
            out = loss_fn(
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
            clip_fn(optimizer.params, cfg.max_grad_norm)
            optimizer.step(live)
            # a frozen member keeps the metrics of its last real minibatch
            cur = torch.stack([x.detach() for x in out[:4]])
            last = cur if last is None else torch.where(live, cur, last)
            if cfg.target_kl is not None:
                live = live & ~(approx_kl > cfg.target_kl)
                if not bool(live.any()):
                    return tuple(last)
    return tuple(last)
