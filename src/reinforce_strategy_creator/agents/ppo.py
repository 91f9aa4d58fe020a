"""Proximal Policy Optimisation (clipped surrogate), one readable file, CleanRL style.

``_train`` reads like SB3's ``learn()``: per update ``_collect_rollout`` -> ``_advantages``
(GAE) -> ``_optimise`` (minibatch epochs of :func:`ppo_loss`), then the ``RunTracker``
evaluates, logs and decides on early stopping. The algorithm and its hyperparameters are
described in docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from ..params.base import Flag, PositiveInt
from .buffers import RolloutBuffer, compute_gae, successor_values
from .config import (
    Activation,
    AgentConfig,
    AgentConfigError,
    Discount,
    Fraction,
    HiddenSizes,
    NonNegative,
    Positive,
)
from .errors import check_finite
from .networks import ActorCriticPolicy, sample_categorical
from .schedules import annealed_lr
from .seeding import deterministic_torch, resolve_device, seed_everything
from .tracking import RunTracker, TrainResult
from .vec_env import TensorVecEnv


class PPOConfig(AgentConfig):
    """PPO hyperparameters (``training.<agent>`` with ``algorithm: ppo``)."""

    PATH: ClassVar[str] = "training.ppo"

    total_steps: PositiveInt = 100_000
    """Env transitions to collect (all lanes together)."""
    num_steps: PositiveInt = 128
    """Steps per lane per rollout; a rollout holds num_steps × num_envs transitions."""
    learning_rate: Positive = 2.5e-4
    """Adam learning rate."""
    anneal_lr: Flag = True
    """Anneal the learning rate linearly to 0 over the run."""
    gamma: Discount = 0.99
    """Discount factor, in (0, 1]."""
    gae_lambda: Fraction = 0.95
    """GAE(λ) bias/variance trade-off, in [0, 1]."""
    num_minibatches: PositiveInt = 4
    """Minibatches per epoch over the rollout."""
    update_epochs: PositiveInt = 4
    """Passes over each rollout."""
    norm_adv: Flag = True
    """Normalise advantages within each minibatch."""
    clip_coef: Positive = 0.2
    """Clip range of the probability ratio (and of the value loss when clip_vloss)."""
    clip_vloss: Flag = True
    """Clip the value loss around the old values."""
    ent_coef: NonNegative = 0.01
    """Entropy bonus coefficient."""
    vf_coef: NonNegative = 0.5
    """Value loss coefficient."""
    max_grad_norm: Positive = 0.5
    """Global gradient-norm clip."""
    target_kl: Positive | None = None
    """Stop the epoch loop early when the approximate KL exceeds this; null = never."""
    hidden_sizes: HiddenSizes = (64, 64)
    """Hidden layer widths of the actor and of the critic (separate MLPs)."""
    activation: Activation = "tanh"
    """Activation of the hidden layers."""
    log_every: PositiveInt = 1
    """Updates per history row (and progress-bar refresh)."""

    def check_batch(self, num_envs: int, prefix: str | None = None) -> None:
        prefix = prefix or self.path
        rollout = self.num_steps * int(num_envs)
        if self.num_minibatches > rollout:
            raise AgentConfigError(
                f"{prefix}.num_minibatches={self.num_minibatches} is larger than the rollout "
                f"({self.num_steps} num_steps x {num_envs} lanes = {rollout} transitions): "
                f"each minibatch would be empty; use at most {rollout} minibatches or a longer "
                "rollout"
            )


def train_ppo(
    envs,
    config: PPOConfig | dict | None = None,
    *,
    seed: int,
    device: str = "auto",
    eval_fn: Callable[[nn.Module], float] | None = None,
    eval_every: int = 10,
    patience: int | None = None,
    progress: bool = True,
) -> TrainResult:
    cfg = config if isinstance(config, PPOConfig) else PPOConfig.from_params(config)
    cfg.check_batch(int(envs.num_envs))
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(envs, cfg, seed, dev, eval_fn, eval_every, patience, progress)


def ppo_loss(
    policy: ActorCriticPolicy, cfg: PPOConfig, obs, actions, old_logprob, old_values, adv, returns, valid
):
    """Clipped PPO loss on one minibatch; returns (loss, pg_loss, v_loss, entropy, approx_kl).

    Every reduction is over the last axis: ``(N,)`` tensors (one model) give scalars,
    ``(K, N)`` tensors (a population, ``agents/population.py``) give ``(K,)`` values, each
    member's own loss with its own advantage normalisation.
    """
    logits, value = policy(obs)
    logp_all = torch.log_softmax(logits, -1)
    logprob = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
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


def _train(envs, cfg: PPOConfig, seed, dev, eval_fn, eval_every, patience, progress) -> TrainResult:
    gen = seed_everything(seed)
    env = TensorVecEnv(envs, dev)
    policy = ActorCriticPolicy(
        env.obs_dim, env.n_actions, cfg.hidden_sizes, cfg.activation, algorithm="ppo"
    ).to(dev)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate, eps=1e-5)
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
        desc="ppo",
    )
    obs = env.reset(seed=seed)

    for update in range(1, num_updates + 1):
        if cfg.anneal_lr:
            optimizer.param_groups[0]["lr"] = annealed_lr(cfg.learning_rate, update, num_updates)
        obs = _collect_rollout(env, policy, buf, tracker, obs, gen)
        adv, returns = _advantages(policy, buf, cfg)
        loss, pg_loss, v_loss, ent = _optimise(policy, optimizer, buf, adv, returns, cfg, gen)
        # a NaN/inf anywhere in the update poisons the weights: the last minibatch's loss shows it
        check_finite(loss.item(), "ppo", seed, update)
        tracker.add_metrics(policy_loss=pg_loss.item(), value_loss=v_loss.item(), entropy=ent.item())
        tracker.end_update(update, last=update == num_updates)
        if tracker.stop:
            break
    return tracker.finish()


@torch.no_grad()
def _collect_rollout(
    env: TensorVecEnv,
    policy: ActorCriticPolicy,
    buf: RolloutBuffer,
    tracker: RunTracker,
    obs: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """Fill ``buf`` with ``num_steps`` vector steps of the stochastic policy; return the
    observation to act on next."""
    policy.eval()
    for t in range(buf.num_steps):
        logits, value = policy(obs)
        action = sample_categorical(logits, gen)
        logprob = torch.log_softmax(logits, -1).gather(-1, action[:, None]).squeeze(-1)
        step = env.step(action)
        buf.store(t, obs, action, logprob, value, step)
        tracker.on_step(step)
        obs = step.obs
    return obs


@torch.no_grad()
def _advantages(policy: ActorCriticPolicy, buf: RolloutBuffer, cfg: PPOConfig):
    """GAE(lambda) advantages and returns of the rollout in ``buf``."""
    next_values = successor_values(buf, policy.value)
    return compute_gae(
        buf.rewards, buf.values, next_values, buf.terminated, buf.dones, buf.valid, cfg.gamma, cfg.gae_lambda
    )


def _optimise(
    policy: ActorCriticPolicy,
    optimizer: torch.optim.Optimizer,
    buf: RolloutBuffer,
    adv: torch.Tensor,
    returns: torch.Tensor,
    cfg: PPOConfig,
    gen: torch.Generator,
):
    """``update_epochs`` passes over shuffled minibatches, stopping early once the approximate
    KL exceeds ``target_kl``; returns the last minibatch's (loss, pg_loss, v_loss, entropy)."""
    policy.train()
    batch = buf.valid.numel()
    mb_size = max(1, batch // cfg.num_minibatches)
    b_obs = buf.obs.reshape(batch, -1)
    b_act, b_logp = buf.actions.reshape(-1), buf.logprobs.reshape(-1)
    b_val, b_valid = buf.values.reshape(-1), buf.valid.reshape(-1)
    b_adv, b_ret = adv.reshape(-1), returns.reshape(-1)
    for _epoch in range(cfg.update_epochs):
        perm = torch.randperm(batch, generator=gen).to(b_obs.device)
        for start in range(0, batch, mb_size):
            mb = perm[start : start + mb_size]
            loss, pg_loss, v_loss, ent, approx_kl = ppo_loss(
                policy, cfg, b_obs[mb], b_act[mb], b_logp[mb], b_val[mb], b_adv[mb], b_ret[mb], b_valid[mb]
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            optimizer.step()
            if cfg.target_kl is not None and float(approx_kl) > cfg.target_kl:
                return loss, pg_loss, v_loss, ent
    return loss, pg_loss, v_loss, ent
