"""Deep Q-Network with double-Q targets, dueling head, n-step returns, one readable file.

Per vector step: epsilon-greedy action (linear decay from ``eps_start`` to ``eps_end``
over ``exploration_fraction`` of the run), transition pushed through an n-step
accumulator into a replay buffer of preallocated tensors on the device. Every
``train_frequency`` vector steps (after ``learning_starts`` transitions) take
``gradient_steps`` gradient steps on minibatches: target
``R + gamma^k * Q_target(s', argmax_a Q_online(s', a))`` (double DQN; plain max when
``double=False``), zero bootstrap on termination, bootstrap on truncation. The target
network follows the online one by Polyak averaging (``tau<1``) or hard copies (``tau=1``)
every ``target_update_every`` gradient steps. Huber (default) or MSE loss, Adam,
gradient-norm clipping. ``reward_scale`` multiplies rewards for learning only (per-bar
log returns are ~1e-2, small for a Q-network's targets). The returned policy acts greedily over Q.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Annotated, ClassVar, Literal

from pydantic import Field

import torch
import torch.nn.functional as F
from torch import nn

from ..params.base import Flag, NonNegativeInt, Number, PositiveInt
from .buffers import NStepAccumulator, ReplayBuffer
from .config import Activation, AgentConfig, AgentConfigError, Discount, Fraction, HiddenSizes, NonNegative, Positive
from .networks import QPolicy
from .schedules import linear_schedule
from .errors import check_finite
from .seeding import deterministic_torch, resolve_device, seed_everything
from .tracking import RunTracker, TrainResult
from .vec_env import TensorVecEnv


class DQNConfig(AgentConfig):
    """DQN hyperparameters (``training.<agent>`` with ``algorithm: dqn``)."""

    PATH: ClassVar[str] = "training.dqn"

    total_steps: PositiveInt = 100_000
    """Env transitions to collect (all lanes together)."""
    learning_rate: Positive = 1e-3
    """Adam learning rate."""
    buffer_size: PositiveInt = 50_000
    """Replay buffer capacity (transitions)."""
    batch_size: PositiveInt = 128
    """Transitions per gradient step."""
    gamma: Discount = 0.99
    """Discount factor, in (0, 1]."""
    n_step: PositiveInt = 1
    """n-step returns (stopping at episode ends)."""
    tau: Annotated[Number, Field(gt=0, le=1)] = 1.0
    """Target-network update rate, in (0, 1]; 1 = hard copy every target_update_every steps."""
    target_update_every: PositiveInt = 250
    """Gradient steps between target-network updates."""
    learning_starts: NonNegativeInt = 1_000
    """Transitions collected before the first gradient step."""
    train_frequency: PositiveInt = 1
    """Vector steps between training iterations."""
    gradient_steps: PositiveInt = 1
    """Gradient steps per training iteration."""
    eps_start: Fraction = 1.0
    """Initial ε of the ε-greedy exploration."""
    eps_end: Fraction = 0.05
    """Final ε."""
    exploration_fraction: Fraction = 0.2
    """Fraction of the run over which ε decays linearly."""
    double: Flag = True
    """Double DQN targets (online argmax, target value)."""
    dueling: Flag = True
    """Dueling head Q = V + A − mean(A)."""
    loss: Literal["huber", "mse"] = "huber"
    """TD loss."""
    reward_scale: Positive = 1.0
    """Rewards are multiplied by this for learning only (daily log returns are ~1e-2)."""
    max_grad_norm: Positive = 10.0
    """Global gradient-norm clip."""
    hidden_sizes: HiddenSizes = (128, 128)
    """Hidden layer widths of the Q-network trunk."""
    activation: Activation = "relu"
    """Activation of the hidden layers."""
    log_every: PositiveInt = 10
    """Iterations per history row (and progress-bar refresh)."""

    def check_batch(self, num_envs: int, prefix: str | None = None) -> None:
        prefix = prefix or self.path
        if self.batch_size > self.buffer_size:
            raise AgentConfigError(
                f"{prefix}.batch_size={self.batch_size} is larger than {prefix}.buffer_size={self.buffer_size}: "
                "the replay buffer could never fill one minibatch; lower batch_size or raise buffer_size"
            )


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
    """``eval_every`` counts iterations (``train_frequency`` vector steps + their gradient steps)."""
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
    q_target = copy.deepcopy(q)
    q_target.requires_grad_(False)
    optimizer = torch.optim.Adam(q.parameters(), lr=cfg.learning_rate)
    rb = ReplayBuffer(cfg.buffer_size, env.obs_dim, dev)
    nstep = NStepAccumulator(cfg.n_step, B, env.obs_dim, cfg.gamma, dev)
    vec_steps_per_iter = cfg.train_frequency
    num_iters = max(1, cfg.total_steps // (B * vec_steps_per_iter))
    total = num_iters * vec_steps_per_iter * B
    tracker = RunTracker(q, B, dev, total_steps=total, eval_fn=eval_fn, eval_every=eval_every,
                         patience=patience, progress=progress, log_every=cfg.log_every, desc="dqn")
    obs = env.reset(seed=seed)
    grad_steps = 0

    for it in range(1, num_iters + 1):
        # ---- act
        for _ in range(vec_steps_per_iter):
            eps = linear_schedule(cfg.eps_start, cfg.eps_end, cfg.exploration_fraction * total, tracker.steps)
            with torch.no_grad():
                greedy = q(obs).argmax(-1)
            explore = torch.rand(B, generator=gen).to(dev) < eps
            random_a = torch.randint(0, env.n_actions, (B,), generator=gen).to(dev)
            action = torch.where(explore, random_a, greedy)
            step = env.step(action)
            tracker.on_step(step)
            if cfg.reward_scale != 1.0:  # learning sees scaled rewards; history keeps raw ones
                step = dataclasses.replace(step, reward=step.reward * cfg.reward_scale)
            ready = nstep.push(obs, action, step)
            if ready is not None:
                rb.add(*ready)
            obs = step.obs

        # ---- learn
        if tracker.steps >= cfg.learning_starts and len(rb) >= cfg.batch_size:
            for _ in range(cfg.gradient_steps):
                s, a, r, s2, disc = rb.sample(cfg.batch_size, gen)
                with torch.no_grad():
                    q_next_t = q_target(s2)
                    if cfg.double:
                        a2 = q(s2).argmax(-1, keepdim=True)
                        nxt = q_next_t.gather(-1, a2).squeeze(-1)
                    else:
                        nxt = q_next_t.max(-1).values
                    target = r + disc * nxt
                q_sa = q(s).gather(-1, a[:, None]).squeeze(-1)
                loss = F.smooth_l1_loss(q_sa, target) if cfg.loss == "huber" else F.mse_loss(q_sa, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(q.parameters(), cfg.max_grad_norm)
                optimizer.step()
                grad_steps += 1
                if grad_steps % cfg.target_update_every == 0:
                    with torch.no_grad():
                        if cfg.tau >= 1.0:
                            q_target.load_state_dict(q.state_dict())
                        else:
                            for p_t, p in zip(q_target.parameters(), q.parameters()):
                                p_t.lerp_(p, cfg.tau)
            q_loss = loss.item()
            check_finite(q_loss, "dqn", seed, it)
            tracker.add_metrics(q_loss=q_loss)
        tracker.end_update(it, last=it == num_iters)
        if tracker.stop:
            break
    return tracker.finish()
