"""A2C for a population: K members (seeds / folds) trained as one; see agents/population.py.

The loop is ``a2c._train``'s with a member axis: one batched rollout of K*B lanes
(member-major), GAE per lane, then ONE gradient step per update on the shared
:func:`~.a2c.a2c_loss` evaluated per member (``(K, T*B)`` transitions), per-member gradient
clipping and a per-member RMSprop (or Adam) step over the stacked parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from .a2c import A2CConfig, a2c_loss
from .buffers import RolloutBuffer
from .errors import check_finite
from .population import (
    MemberEnvs,
    PopulationActorCritic,
    PopulationTrackers,
    StackedAdam,
    StackedRMSprop,
    build_actor_critic_members,
    check_members,
    clip_grad_norm_per_member,
    collect_rollout,
    member_major,
    population_gae,
)
from .schedules import annealed_lr
from .seeding import deterministic_torch, resolve_device
from .tracking import TrainResult


def train_a2c_population(
    member_envs: Sequence,
    config: A2CConfig | dict | None = None,
    *,
    seeds: Sequence[int],
    device: str = "auto",
    eval_fns: Sequence[Callable[[nn.Module], float] | None] | None = None,
    eval_every: int = 100,
    patience: int | None = None,
    progress: bool = True,
) -> list[TrainResult]:
    """Train one A2C member per ``(member_envs[k], seeds[k], eval_fns[k])``; one
    :class:`TrainResult` per member, in order, with the contract of :func:`~.a2c.train_a2c`."""
    cfg = config if isinstance(config, A2CConfig) else A2CConfig.from_params(config)
    eval_fns = check_members(member_envs, seeds, eval_fns)
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(member_envs, cfg, list(seeds), dev, eval_fns, eval_every, patience, progress)


def _train(member_envs, cfg: A2CConfig, seeds, dev, eval_fns, eval_every, patience, progress):
    env = MemberEnvs(member_envs, seeds, dev)
    k, b = env.k, env.lanes
    members, gens = build_actor_critic_members(
        seeds, env.obs_dim, env.n_actions, cfg.hidden_sizes, cfg.activation, "a2c", dev
    )
    pop = PopulationActorCritic(members)
    buf = RolloutBuffer(cfg.num_steps, k * b, env.obs_dim, dev)
    return run_a2c_population(
        env, members, gens, pop, buf, cfg, seeds, dev, eval_fns, eval_every, patience, progress, desc="a2c"
    )


def run_a2c_population(
    env,
    members,
    gens,
    pop,
    buf: RolloutBuffer,
    cfg: A2CConfig,
    seeds,
    dev,
    eval_fns,
    eval_every,
    patience,
    progress,
    *,
    desc: str,
    loss_fn: Callable = a2c_loss,
    clip_fn: Callable = clip_grad_norm_per_member,
    collect_fn: Callable = collect_rollout,
):
    """The population's A2C loop on any member-major env: per update ``collect_fn`` a rollout, GAE
    per lane, one gradient step of every member's ``loss_fn`` over its whole rollout (``clip_fn``
    per member), then evaluation and early stopping per member. The single-asset population and
    the portfolio trainer (``portfolio/a2c.py``: its own rollout, loss and clipping) both run it."""
    k, b = env.k, env.lanes
    if cfg.optimizer == "rmsprop":
        optimizer = StackedRMSprop(
            pop.parameters(), k, lr=cfg.learning_rate, alpha=cfg.rms_alpha, eps=cfg.eps
        )
    else:
        optimizer = StackedAdam(pop.parameters(), k, lr=cfg.learning_rate, eps=cfg.eps)
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
        loss, pg_loss, v_loss, ent = loss_fn(
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
        clip_fn(optimizer.params, cfg.max_grad_norm)
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
