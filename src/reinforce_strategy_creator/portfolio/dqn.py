"""DQN for portfolios over a finite allocation set (:data:`.policies.ALLOCATIONS`), one file.

Actions: all-in asset i (one per asset), all cash, equal weight over the tradable assets; the
Q-network (:class:`.policies.PortfolioQ`) scores the all-in actions with one head shared across
assets, so it does not grow with N. Actions on untradable assets are masked: never greedy, never
explored, never a bootstrap target.

``_train``: per iteration ``train_frequency`` epsilon-greedy vector steps (exploration uniform
over the valid actions) into each member's n-step accumulator and replay buffer
(``agents.buffers``), then ``gradient_steps`` TD steps (``agents.dqn.td_target`` / ``td_loss``:
double-Q targets, Huber or MSE) and the target-network update, then each member's
``RunTracker`` evaluates, logs and early-stops. Hyperparameters are ``agents.dqn.DQNConfig``.
Members (seeds) train stacked as in :mod:`.ppo`, each with its own replay buffer, generator
(exploration, replay sampling) and ``PortfolioCore``; a member's weights do not depend on the
other members.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..agents.buffers import NStepAccumulator, ReplayBuffer
from ..agents.dqn import DQNConfig, td_loss, td_target
from ..agents.errors import check_finite
from ..agents.population import (
    PopulationTrackers,
    StackedAdam,
    check_members,
    clip_grad_norm_per_member,
    member_step,
)
from ..agents.portfolio_policies import PortfolioQ, StackedPortfolio, allocation_weights, members_of
from ..agents.schedules import linear_schedule
from ..agents.seeding import deterministic_torch, resolve_device
from ..agents.tracking import TrainResult
from ..env.portfolio import PortfolioCore
from .ppo import PortfolioLanes

__all__ = ["explore_valid", "train_portfolio_dqn"]


def explore_valid(
    greedy: torch.Tensor, valid: torch.Tensor, eps: float, gen: torch.Generator
) -> torch.Tensor:
    """Replace each of the (B,) greedy actions, with probability ``eps``, by one drawn uniformly
    from that lane's valid actions (``valid`` (B, A)); draws B + B*A uniforms from ``gen``
    whatever ``eps`` is."""
    B, A = valid.shape
    explore = torch.rand(B, generator=gen).to(greedy.device) < eps
    u = torch.rand(B, A, generator=gen).to(greedy.device)
    random_a = torch.where(valid, u, torch.full_like(u, -1.0)).argmax(-1)
    return torch.where(explore, random_a, greedy)


def train_portfolio_dqn(
    cores: Sequence[PortfolioCore],
    config: DQNConfig | dict | None = None,
    *,
    seeds: Sequence[int],
    scaler: tuple,
    device: str = "cpu",
    eval_fns: Sequence[Callable[[nn.Module], float] | None] | None = None,
    eval_every: int = 50,
    patience: int | None = None,
    progress: bool = False,
) -> list[TrainResult]:
    """As :func:`.ppo.train_portfolio_ppo` with DQN (``eval_every`` counts iterations of
    ``train_frequency`` vector steps)."""
    cfg = config if isinstance(config, DQNConfig) else DQNConfig.from_params(config)
    eval_fns = check_members(cores, [int(s) for s in seeds], eval_fns)
    cfg.check_batch(int(cores[0].num_envs))
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(
            cores, cfg, [int(s) for s in seeds], scaler, dev, eval_fns, eval_every, patience, progress
        )


def _train(cores, cfg: DQNConfig, seeds, scaler, dev, eval_fns, eval_every, patience, progress):
    env = PortfolioLanes(cores, seeds, dev)
    k, b = env.k, env.lanes

    def factory():
        q = PortfolioQ(
            env.n_assets, env.window, env.n_features, cfg.hidden_sizes, cfg.activation, dueling=cfg.dueling
        )
        q.set_scaler(*scaler)
        return q

    members, gens = members_of(seeds, factory, dev)
    pop = StackedPortfolio(members)
    target = StackedPortfolio([copy.deepcopy(m) for m in members])
    target.requires_grad_(False)
    optimizer = StackedAdam(pop.parameters(), k, lr=cfg.learning_rate)
    rbs = [ReplayBuffer(cfg.buffer_size, env.obs_dim, dev) for _ in range(k)]
    nsteps = [NStepAccumulator(cfg.n_step, b, env.obs_dim, cfg.gamma, dev) for _ in range(k)]
    num_iters = max(1, cfg.total_steps // (b * cfg.train_frequency))
    total = num_iters * cfg.train_frequency * b
    trackers = PopulationTrackers(
        members,
        b,
        dev,
        total_steps=total,
        eval_fns=eval_fns,
        eval_every=eval_every,
        patience=patience,
        progress=progress,
        log_every=cfg.log_every,
        desc="portfolio dqn",
        seeds=seeds,
    )
    layout = members[0].layout
    obs = env.reset()
    env_steps, grad_steps = 0, 0  # per member (every member steps every vector step)

    for it in range(1, num_iters + 1):
        for _ in range(cfg.train_frequency):
            eps = linear_schedule(cfg.eps_start, cfg.eps_end, cfg.exploration_fraction * total, env_steps)
            with torch.no_grad():
                q, valid = pop.template.q_values(obs.reshape(k, b, -1), pop.lin)
            greedy = q.argmax(-1)
            action = torch.cat([explore_valid(greedy[i], valid[i], eps, gens[i]) for i in range(k)])
            step = env.step(allocation_weights(action, layout.split(obs).tradable))
            trackers.on_step(step)
            env_steps += b
            if cfg.reward_scale != 1.0:  # learning sees scaled rewards; history keeps raw ones
                step = dataclasses.replace(step, reward=step.reward * cfg.reward_scale)
            for i in range(k):
                sl = slice(i * b, (i + 1) * b)
                ready = nsteps[i].push(obs[sl], action[sl], member_step(step, i, b))
                if ready is not None:
                    rbs[i].add(*ready)
            obs = step.obs
        metrics = [{} for _ in range(k)]
        if env_steps >= cfg.learning_starts and min(len(rb) for rb in rbs) >= cfg.batch_size:
            loss, grad_steps = _learn(pop, target, optimizer, rbs, gens, cfg, trackers.active, grad_steps)
            losses = loss.tolist()
            for i in range(k):
                if bool(trackers.active[i]):
                    check_finite(losses[i], "dqn", seeds[i], it)
            metrics = [dict(q_loss=losses[i]) for i in range(k)]
        for i in trackers.end_update(it, it == num_iters, metrics):
            trackers.finish(i, pop)
        if not bool(trackers.active.any()):
            break
    return trackers.close()


def _learn(pop, target, optimizer, rbs, gens, cfg: DQNConfig, active, grad_steps: int):
    """``gradient_steps`` TD steps, each on one replayed minibatch per member (its own buffer and
    generator), and the target updates; returns the last step's (K,) losses and the step count."""
    for _ in range(cfg.gradient_steps):
        s, a, r, s2, disc = (
            torch.stack(x)
            for x in zip(
                *(rb.sample(cfg.batch_size, g) for rb, g in zip(rbs, gens, strict=True)), strict=True
            )
        )
        tgt = td_target(pop, target, r, s2, disc, cfg.double)
        q_sa = pop(s).gather(-1, a[..., None]).squeeze(-1)
        loss = td_loss(q_sa, tgt, cfg.loss)  # (K,)
        optimizer.zero_grad()
        loss.sum().backward()
        clip_grad_norm_per_member(optimizer.params, cfg.max_grad_norm)
        optimizer.step(active)
        grad_steps += 1
        if grad_steps % cfg.target_update_every == 0:
            _update_target(pop, target, cfg.tau)
    return loss, grad_steps


@torch.no_grad()
def _update_target(pop: StackedPortfolio, target: StackedPortfolio, tau: float) -> None:
    """Hard copy (``tau`` = 1) or Polyak averaging of every member's target towards its online net."""
    for p_t, p in zip(target.parameters(), pop.parameters(), strict=True):
        if tau >= 1.0:
            p_t.copy_(p)
        else:
            p_t.lerp_(p, tau)
