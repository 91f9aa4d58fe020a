"""Deep Q-Network with double-Q targets, dueling head, n-step returns, one readable file.

:func:`train_dqn` trains a population of K >= 1 members (agents/population.py), one member
being a plain run. Per iteration: ``train_frequency`` vector steps (one batched greedy forward
for all members' lanes, then each member's own epsilon-greedy draws from its generator over the
valid actions of the Q-network's action table: ``members.PositionTable`` for the positions of a
vector env, ``members.AllocationTable`` for the allocations of a ``PortfolioCore``) into
each member's n-step accumulator and replay buffer, then :meth:`_QLearner.learn`
(``gradient_steps`` TD steps, each on every learning member's own replayed minibatch, and the
target-network updates), then each member's ``RunTracker`` evaluates, logs and decides on
early stopping. The algorithm and its hyperparameters are described in docs/agents.md.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..params.agents import DQNConfig, agent_config
from .buffers import NStepAccumulator, ReplayBuffer
from .errors import check_finite
from .members import is_portfolio, member_env, q_population
from .population import (
    Population,
    PopulationTrackers,
    StackedAdam,
    check_members,
    clip_grad_norm_per_member,
    learning_step,
    member_step,
)
from .schedules import linear_schedule
from .seeding import deterministic_torch, resolve_device
from .tracking import TrainResult


def train_dqn(
    member_envs: Sequence,
    config: DQNConfig | dict | None = None,
    *,
    seeds: Sequence[int],
    device: str = "auto",
    eval_fns: Sequence[Callable[[nn.Module], float] | None] | None = None,
    eval_every: int = 50,
    patience: int | None = None,
    progress: bool = True,
    scaler: tuple | None = None,
) -> list[TrainResult]:
    """Train one DQN member per ``(member_envs[k], seeds[k], eval_fns[k])``; one
    :class:`TrainResult` per member, in order (docs/agents.md, "Calling convention").
    ``eval_every`` counts iterations (``train_frequency`` vector steps + their gradient steps).
    ``member_envs`` are vector envs over the position table (``QPolicy``) or ``PortfolioCore`` s
    (``PortfolioQ`` over the allocation table; ``scaler`` required; ``members``)."""
    cfg = agent_config("dqn", config, universe=is_portfolio(member_envs))
    eval_fns = check_members(member_envs, seeds, eval_fns)
    for envs in member_envs:
        cfg.check_batch(int(envs.num_envs))
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(member_envs, cfg, list(seeds), dev, eval_fns, eval_every, patience, progress, scaler)


def _train(member_envs, cfg: DQNConfig, seeds, dev, eval_fns, eval_every, patience, progress, scaler):
    env = member_env(member_envs, seeds, dev, cfg)
    k, b = env.k, env.lanes
    members, gens, stack, table = q_population(env, seeds, cfg, dev, scaler)
    learner = _QLearner(members, cfg, stack)
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
        desc="dqn",
        seeds=seeds,
        score_start=cfg.start_at_benchmark,
        start_handicap=cfg.benchmark_margin,
    )
    obs = env.reset()

    for it in range(1, num_iters + 1):
        for _ in range(cfg.train_frequency):
            eps = linear_schedule(
                cfg.eps_start, cfg.eps_end, cfg.exploration_fraction * total, trackers.steps
            )
            rows = obs.reshape(k, b, -1)
            with torch.no_grad():
                greedy = learner.q(rows).argmax(-1)
            valid = table.valid(rows)
            action = torch.cat(
                [
                    table.explore(greedy[i], None if valid is None else valid[i], eps, gens[i])
                    for i in range(k)
                ]
            )
            step = env.step(table.env_action(action, obs))
            trackers.on_step(step)
            step = learning_step(env, step)  # learning sees the excess reward where baselined
            if cfg.reward_scale != 1.0:  # learning sees scaled rewards; history keeps raw ones
                step = dataclasses.replace(step, reward=step.reward * cfg.reward_scale)
            for i in range(k):
                sl = slice(i * b, (i + 1) * b)
                ready = nsteps[i].push(obs[sl], action[sl], member_step(step, i, b))
                if ready is not None:
                    rbs[i].add(*ready)
            obs = step.obs
        learning = torch.tensor(
            [
                bool(trackers.active[i])
                and trackers.trackers[i].steps >= cfg.learning_starts
                and len(rbs[i]) >= cfg.batch_size
                for i in range(k)
            ]
        )
        metrics: list[dict[str, float]] = [{} for _ in range(k)]
        if bool(learning.any()):
            q_loss = learner.learn(rbs, gens, learning)
            for i in range(k):
                if bool(learning[i]):
                    check_finite(q_loss[i], "dqn", seeds[i], it)
                    metrics[i] = dict(q_loss=q_loss[i])
        for i in trackers.end_update(it, it == num_iters, metrics):
            trackers.finish(i, learner.q)
        if not bool(trackers.active.any()):
            break
    return trackers.close()


def td_loss(q_sa: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Huber or MSE TD loss, the mean over the last axis: ``(K,)`` for ``(K, N)`` (one loss per
    member), a scalar for ``(N,)``."""
    if kind == "huber":
        return F.smooth_l1_loss(q_sa, target, reduction="none").mean(-1)
    return F.mse_loss(q_sa, target, reduction="none").mean(-1)


@torch.no_grad()
def td_target(
    q, q_target, r: torch.Tensor, s2: torch.Tensor, disc: torch.Tensor, double: bool
) -> torch.Tensor:
    """``r + disc * Q_target(s2, a*)``: a* = argmax of the online net (double DQN) or of the
    target net; ``disc`` is 0 after a termination. Works on (K, N) members or (N,) rows."""
    q_next_t = q_target(s2)
    if double:
        a2 = q(s2).argmax(-1, keepdim=True)
        nxt = q_next_t.gather(-1, a2).squeeze(-1)
    else:
        nxt = q_next_t.max(-1).values
    return r + disc * nxt


class _QLearner:
    """The stacked online Q-networks (``stack``: ``PopulationQ`` or ``StackedPortfolio``),
    their optimiser and the stacked target networks."""

    def __init__(self, members: Sequence[nn.Module], cfg: DQNConfig, stack: type[Population]):
        self.cfg = cfg
        self.q = stack(members)
        self.q_target = stack([copy.deepcopy(m) for m in members])
        self.q_target.requires_grad_(False)
        self.optimizer = StackedAdam(self.q.parameters(), self.q.k, lr=cfg.learning_rate)
        self.grad_steps = torch.zeros(self.q.k, dtype=torch.long)

    def learn(self, rbs: Sequence[ReplayBuffer], gens, learning: torch.Tensor) -> list[float]:
        """``gradient_steps`` TD steps of the ``learning`` members, each on minibatches of its
        own replay buffer: TD loss -> per-member clipping -> one optimiser step; every member's
        last-step loss (NaN for members not learning)."""
        cfg, k = self.cfg, self.q.k
        for _ in range(cfg.gradient_steps):
            batches = []
            for i in range(k):
                if bool(learning[i]):
                    batches.append(rbs[i].sample(cfg.batch_size, gens[i]))
                else:  # a placeholder minibatch: no RNG draw, its update is masked out
                    rb = rbs[i]
                    batches.append(
                        tuple(
                            x[: cfg.batch_size]
                            for x in (rb.obs, rb.actions, rb.returns, rb.next_obs, rb.discounts)
                        )
                    )
            s, a, r, s2, disc = (torch.stack(x) for x in zip(*batches, strict=True))
            target = td_target(self.q, self.q_target, r, s2, disc, cfg.double)
            q_sa = self.q(s).gather(-1, a.unsqueeze(-1)).squeeze(-1)
            loss = td_loss(q_sa, target, cfg.loss)
            self.optimizer.zero_grad()
            loss.sum().backward()
            clip_grad_norm_per_member(self.optimizer.params, cfg.max_grad_norm)
            self.optimizer.step(learning)
            self.grad_steps += learning.long()
            due = learning & (self.grad_steps % cfg.target_update_every == 0)
            if bool(due.any()):
                self._update_target(due)
        out = loss.detach().tolist()
        return [out[i] if bool(learning[i]) else float("nan") for i in range(k)]

    @torch.no_grad()
    def _update_target(self, due: torch.Tensor) -> None:
        """Per due member: hard copy (``tau`` = 1) or Polyak averaging towards its online net."""
        for p_t, p in zip(self.q_target.parameters(), self.q.parameters(), strict=True):
            new = p if self.cfg.tau >= 1.0 else torch.lerp(p_t, p, self.cfg.tau)
            p_t.copy_(torch.where(due.to(p.device).reshape(-1, *([1] * (p.dim() - 1))), new, p_t))
