"""Advantage Actor-Critic (synchronous A2C), one readable file.

``_train``: per update ``_collect_rollout`` -> ``_advantages`` (GAE; ``gae_lambda=1`` gives
n-step returns) -> ONE gradient step on :func:`a2c_loss`, then the ``RunTracker`` evaluates,
logs and decides on early stopping. The algorithm and its hyperparameters are described in
docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..params.agents import A2CConfig
from .buffers import RolloutBuffer, compute_gae, successor_values
from .errors import check_finite
from .networks import ActorCriticPolicy, sample_categorical
from .schedules import annealed_lr
from .seeding import deterministic_torch, resolve_device, seed_everything
from .tracking import RunTracker, TrainResult
from .vec_env import TensorVecEnv


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


def a2c_loss(policy: ActorCriticPolicy, cfg: A2CConfig, obs, actions, adv, returns, valid):
    """A2C loss over a whole rollout; returns (loss, pg_loss, v_loss, entropy).

    Every reduction is over the last axis: flat ``(N,)`` transitions (one model) give scalars,
    ``(K, N)`` (a population, ``agents/population.py``) give ``(K,)``, one loss per member.
    """
    logits, values = policy(obs)
    logp_all = torch.log_softmax(logits, -1)
    logprob = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
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


def _train(envs, cfg: A2CConfig, seed, dev, eval_fn, eval_every, patience, progress) -> TrainResult:
    gen = seed_everything(seed)
    env = TensorVecEnv(envs, dev)
    policy = ActorCriticPolicy(
        env.obs_dim, env.n_actions, cfg.hidden_sizes, cfg.activation, algorithm="a2c"
    ).to(dev)
    optimizer = _optimizer(policy, cfg)
    buf = RolloutBuffer(cfg.num_steps, env.num_envs, env.obs_dim, dev)
    batch = cfg.num_steps * env.num_envs
    num_updates = max(1, cfg.total_steps // batch)
    tracker = RunTracker(
        policy,
        env.num_envs,
        dev,
        total_steps=num_updates * batch,
        eval_fn=eval_fn,
        eval_every=eval_every,
        patience=patience,
        progress=progress,
        log_every=cfg.log_every,
        desc="a2c",
    )
    obs = env.reset(seed=seed)

    for update in range(1, num_updates + 1):
        if cfg.anneal_lr:
            optimizer.param_groups[0]["lr"] = annealed_lr(cfg.learning_rate, update, num_updates)
        obs = _collect_rollout(env, policy, buf, tracker, obs, gen)
        adv, returns = _advantages(policy, buf, cfg)
        n = buf.valid.numel()
        loss, pg_loss, v_loss, ent = a2c_loss(
            policy,
            cfg,
            buf.obs.reshape(n, -1),
            buf.actions.reshape(n),
            adv.reshape(n),
            returns.reshape(n),
            buf.valid.reshape(n),
        )
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


def _optimizer(policy: nn.Module, cfg: A2CConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            policy.parameters(), lr=cfg.learning_rate, alpha=cfg.rms_alpha, eps=cfg.eps
        )
    return torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate, eps=cfg.eps)


@torch.no_grad()
def _collect_rollout(
    env: TensorVecEnv,
    policy: ActorCriticPolicy,
    buf: RolloutBuffer,
    tracker: RunTracker,
    obs: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """Fill ``buf`` with ``num_steps`` vector steps of the stochastic policy (log-probs are
    not needed: one gradient step per rollout); return the observation to act on next."""
    for t in range(buf.num_steps):
        logits, value = policy(obs)
        action = sample_categorical(logits, gen)
        step = env.step(action)
        buf.store(t, obs, action, torch.zeros_like(value), value, step)
        tracker.on_step(step)
        obs = step.obs
    return obs


@torch.no_grad()
def _advantages(policy: ActorCriticPolicy, buf: RolloutBuffer, cfg: A2CConfig):
    """GAE(lambda) advantages and returns of the rollout (``gae_lambda=1``: n-step returns)."""
    next_values = successor_values(buf, policy.value)
    return compute_gae(
        buf.rewards, buf.values, next_values, buf.terminated, buf.dones, buf.valid, cfg.gamma, cfg.gae_lambda
    )
