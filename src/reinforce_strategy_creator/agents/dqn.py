"""Deep Q-Network with double-Q targets, dueling head, n-step returns, one readable file.

``_train``: per iteration ``train_frequency`` epsilon-greedy vector steps into an n-step
accumulator and the replay buffer, then ``_QLearner.learn`` (``gradient_steps`` TD steps
and the target-network update), then the ``RunTracker`` evaluates, logs and decides on
early stopping. The algorithm and its hyperparameters are described in docs/agents.md.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..params.agents import DQNConfig
from .buffers import NStepAccumulator, ReplayBuffer
from .errors import check_finite
from .networks import QPolicy
from .schedules import linear_schedule
from .seeding import deterministic_torch, resolve_device, seed_everything
from .tracking import RunTracker, TrainResult
from .vec_env import TensorVecEnv


def train_dqn(
    envs,
    config: DQNConfig | dict | None = None,
    *,
    seed: int,
    device: str = "auto",
    eval_fn: Callable[[nn.Module], float] | None = None,
    eval_every: int = 50,
    patience: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """``eval_every`` counts iterations (``train_frequency`` vector steps + their gradient
    steps)."""
    cfg = config if isinstance(config, DQNConfig) else DQNConfig.from_params(config)
    cfg.check_batch(int(envs.num_envs))
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(envs, cfg, seed, dev, eval_fn, eval_every, patience, progress)


def _train(envs, cfg: DQNConfig, seed, dev, eval_fn, eval_every, patience, progress) -> TrainResult:
    gen = seed_everything(seed)
    env = TensorVecEnv(envs, dev)
    B = env.num_envs
    q = QPolicy(env.obs_dim, env.n_actions, cfg.hidden_sizes, cfg.activation, dueling=cfg.dueling).to(dev)
    learner = _QLearner(q, cfg)
    rb = ReplayBuffer(cfg.buffer_size, env.obs_dim, dev)
    nstep = NStepAccumulator(cfg.n_step, B, env.obs_dim, cfg.gamma, dev)
    num_iters = max(1, cfg.total_steps // (B * cfg.train_frequency))
    total = num_iters * cfg.train_frequency * B
    tracker = RunTracker(
        q,
        B,
        dev,
        total_steps=total,
        eval_fn=eval_fn,
        eval_every=eval_every,
        patience=patience,
        progress=progress,
        log_every=cfg.log_every,
        desc="dqn",
    )
    obs = env.reset(seed=seed)

    for it in range(1, num_iters + 1):
        for _ in range(cfg.train_frequency):
            eps = linear_schedule(cfg.eps_start, cfg.eps_end, cfg.exploration_fraction * total, tracker.steps)
            action = _epsilon_greedy(q, obs, eps, env.n_actions, gen)
            step = env.step(action)
            tracker.on_step(step)
            if cfg.reward_scale != 1.0:  # learning sees scaled rewards; history keeps raw ones
                step = dataclasses.replace(step, reward=step.reward * cfg.reward_scale)
            ready = nstep.push(obs, action, step)
            if ready is not None:
                rb.add(*ready)
            obs = step.obs
        if tracker.steps >= cfg.learning_starts and len(rb) >= cfg.batch_size:
            q_loss = learner.learn(rb, gen)
            check_finite(q_loss, "dqn", seed, it)
            tracker.add_metrics(q_loss=q_loss)
        tracker.end_update(it, last=it == num_iters)
        if tracker.stop:
            break
    return tracker.finish()


def _epsilon_greedy(
    q: QPolicy, obs: torch.Tensor, eps: float, n_actions: int, gen: torch.Generator
) -> torch.Tensor:
    """Per lane: a uniformly random action with probability ``eps``, else the greedy one."""
    with torch.no_grad():
        greedy = q(obs).argmax(-1)
    return explore(greedy, eps, n_actions, gen)


def explore(greedy: torch.Tensor, eps: float, n_actions: int, gen: torch.Generator) -> torch.Tensor:
    """Replace each of the (B,) greedy actions by a uniform random one with probability ``eps``
    (draws B uniforms then B actions from ``gen``, whatever ``eps`` is)."""
    B = greedy.shape[0]
    explore_ = torch.rand(B, generator=gen).to(greedy.device) < eps
    random_a = torch.randint(0, n_actions, (B,), generator=gen).to(greedy.device)
    return torch.where(explore_, random_a, greedy)


def td_loss(q_sa: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Huber or MSE TD loss, the mean over the last axis: a scalar for ``(N,)`` (one model),
    ``(K,)`` for ``(K, N)`` (a population, one loss per member)."""
    if kind == "huber":
        return F.smooth_l1_loss(q_sa, target, reduction="none").mean(-1)
    return F.mse_loss(q_sa, target, reduction="none").mean(-1)


@torch.no_grad()
def td_target(
    q, q_target, r: torch.Tensor, s2: torch.Tensor, disc: torch.Tensor, double: bool
) -> torch.Tensor:
    """``r + disc * Q_target(s2, a*)``: a* = argmax of the online net (double DQN) or of the
    target net; ``disc`` is 0 after a termination. Works on (N,) rows or (K, N) members."""
    q_next_t = q_target(s2)
    if double:
        a2 = q(s2).argmax(-1, keepdim=True)
        nxt = q_next_t.gather(-1, a2).squeeze(-1)
    else:
        nxt = q_next_t.max(-1).values
    return r + disc * nxt


class _QLearner:
    """The online Q-network's optimiser and the target network it learns towards."""

    def __init__(self, q: QPolicy, cfg: DQNConfig):
        self.q, self.cfg = q, cfg
        self.q_target = copy.deepcopy(q)
        self.q_target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(q.parameters(), lr=cfg.learning_rate)
        self.grad_steps = 0

    def learn(self, rb: ReplayBuffer, gen: torch.Generator) -> float:
        """``gradient_steps`` TD steps on replayed minibatches; the last step's loss."""
        cfg = self.cfg
        for _ in range(cfg.gradient_steps):
            s, a, r, s2, disc = rb.sample(cfg.batch_size, gen)
            target = td_target(self.q, self.q_target, r, s2, disc, cfg.double)
            q_sa = self.q(s).gather(-1, a[:, None]).squeeze(-1)
            loss = td_loss(q_sa, target, cfg.loss)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.q.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            self.grad_steps += 1
            if self.grad_steps % cfg.target_update_every == 0:
                self._update_target()
        return loss.item()

    @torch.no_grad()
    def _update_target(self) -> None:
        """Hard copy (``tau`` = 1) or Polyak averaging towards the online network."""
        if self.cfg.tau >= 1.0:
            self.q_target.load_state_dict(self.q.state_dict())
        else:
            for p_t, p in zip(self.q_target.parameters(), self.q.parameters(), strict=True):
                p_t.lerp_(p, self.cfg.tau)
