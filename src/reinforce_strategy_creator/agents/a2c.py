"""Advantage Actor-Critic (synchronous A2C), one readable file.

Each update collects ``num_steps`` transitions from every lane, computes advantages with
GAE(lambda) -- ``gae_lambda=1`` gives plain n-step returns -- and takes ONE gradient step
on ``-A*log pi - ent_coef*H + vf_coef*(V - R)^2/2`` with RMSprop (default, as in Mnih et
al. 2016) or Adam, gradient-norm clipping and optional linear LR annealing. Truncation is
bootstrapped, termination is not, NEXT_STEP reset transitions are masked out (shared
rollout machinery in ``buffers.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .buffers import RolloutBuffer, compute_gae, successor_values
from .common import (
    AgentConfig,
    RunTracker,
    TensorVecEnv,
    TrainResult,
    check_finite,
    deterministic_torch,
    discount,
    hidden_sizes_ok,
    non_negative,
    positive,
    positive_int,
    resolve_device,
    rule,
    seed_everything,
    unit_interval,
)
from .networks import ACTIVATIONS, ActorCriticPolicy, sample_categorical


@dataclass(frozen=True)
class A2CConfig(AgentConfig):
    total_steps: int = field(default=200_000, metadata=rule(positive_int, "must be a positive int"))
    num_steps: int = field(default=5, metadata=rule(positive_int, "must be a positive int (steps per lane per update)"))
    learning_rate: float = field(default=7e-4, metadata=rule(positive, "must be > 0"))
    optimizer: str = field(default="rmsprop", metadata=rule(lambda x: x in ("rmsprop", "adam"), "must be 'rmsprop' or 'adam'"))
    rms_alpha: float = field(default=0.99, metadata=rule(lambda x: 0 < x < 1, "must be in (0, 1)"))
    eps: float = field(default=1e-5, metadata=rule(positive, "must be > 0"))
    anneal_lr: bool = field(default=False, metadata=rule(lambda x: isinstance(x, bool), "must be true/false"))
    gamma: float = field(default=0.99, metadata=rule(discount, "must be in (0, 1]"))
    gae_lambda: float = field(default=1.0, metadata=rule(unit_interval, "must be in [0, 1]"))
    norm_adv: bool = field(default=False, metadata=rule(lambda x: isinstance(x, bool), "must be true/false"))
    ent_coef: float = field(default=0.0, metadata=rule(non_negative, "must be >= 0"))
    vf_coef: float = field(default=0.5, metadata=rule(non_negative, "must be >= 0"))
    max_grad_norm: float = field(default=0.5, metadata=rule(positive, "must be > 0"))
    hidden_sizes: tuple = field(default=(64, 64), metadata=rule(hidden_sizes_ok, "must be a non-empty list of positive ints"))
    activation: str = field(default="tanh", metadata=rule(lambda x: x in ACTIVATIONS, f"must be one of {sorted(ACTIVATIONS)}"))
    log_every: int = field(default=20, metadata=rule(positive_int, "must be a positive int (updates per history row)"))

    @classmethod
    def default_prefix(cls) -> str:
        return "training.a2c"


def train_a2c(
    envs,
    config: A2CConfig | dict | None = None,
    *,
    seed: int,
    device: str = "auto",
    eval_fn: Callable[[nn.Module], float] | None = None,
    eval_every: int = 100,
    patience: int | None = None,
    progress: bool = True,
) -> TrainResult:
    cfg = config if isinstance(config, A2CConfig) else A2CConfig.from_params(config)
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(envs, cfg, seed, dev, eval_fn, eval_every, patience, progress)


def _train(envs, cfg: A2CConfig, seed, dev, eval_fn, eval_every, patience, progress) -> TrainResult:
    gen = seed_everything(seed)
    env = TensorVecEnv(envs, dev)
    B, T = env.num_envs, cfg.num_steps
    policy = ActorCriticPolicy(env.obs_dim, env.n_actions, cfg.hidden_sizes, cfg.activation, algorithm="a2c").to(dev)
    if cfg.optimizer == "rmsprop":
        optimizer = torch.optim.RMSprop(policy.parameters(), lr=cfg.learning_rate, alpha=cfg.rms_alpha, eps=cfg.eps)
    else:
        optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate, eps=cfg.eps)
    buf = RolloutBuffer(T, B, env.obs_dim, dev)
    batch = T * B
    num_updates = max(1, cfg.total_steps // batch)
    tracker = RunTracker(policy, B, dev, total_steps=num_updates * batch, eval_fn=eval_fn, eval_every=eval_every,
                         patience=patience, progress=progress, log_every=cfg.log_every, desc="a2c")
    obs = env.reset(seed=seed)

    for update in range(1, num_updates + 1):
        if cfg.anneal_lr:
            optimizer.param_groups[0]["lr"] = cfg.learning_rate * (1.0 - (update - 1.0) / num_updates)
        with torch.no_grad():
            for t in range(T):
                logits, value = policy(obs)
                action = sample_categorical(logits, gen)
                step = env.step(action)
                buf.store(t, obs, action, torch.zeros_like(value), value, step)
                tracker.on_step(step)
                obs = step.obs
            next_values = successor_values(buf, policy.value)
            adv, returns = compute_gae(buf.rewards, buf.values, next_values, buf.terminated, buf.dones,
                                       buf.valid, cfg.gamma, cfg.gae_lambda)

        logits, values = policy(buf.obs.reshape(batch, -1))
        logp_all = torch.log_softmax(logits, -1)
        logprob = logp_all.gather(-1, buf.actions.reshape(-1, 1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        valid = buf.valid.reshape(-1)
        n = valid.sum().clamp_min(1.0)
        a = adv.reshape(-1)
        if cfg.norm_adv:
            mean = (a * valid).sum() / n
            a = (a - mean) / ((((a - mean) ** 2 * valid).sum() / n).sqrt() + 1e-8)
        pg_loss = -(a * logprob * valid).sum() / n
        v_loss = 0.5 * (((values - returns.reshape(-1)) ** 2) * valid).sum() / n
        ent = (entropy * valid).sum() / n
        loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
        optimizer.step()

        check_finite(loss.item(), "a2c", seed, update)
        tracker.add_metrics(policy_loss=pg_loss.item(), value_loss=v_loss.item(), entropy=ent.item())
        tracker.end_update(update, last=update == num_updates)
        if tracker.stop:
            break
    return tracker.finish()
