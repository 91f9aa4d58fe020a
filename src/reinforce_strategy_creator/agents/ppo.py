"""Proximal Policy Optimisation (clipped surrogate), one readable file, CleanRL style.

``_train`` reads like SB3's ``learn()``: per update ``_collect_rollout`` -> ``_advantages``
(GAE) -> ``_optimise`` (minibatch epochs of :func:`ppo_loss`), then the ``RunTracker``
evaluates, logs and decides on early stopping. The algorithm and its hyperparameters are
described in docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..params.agents import PPOConfig
from .buffers import RolloutBuffer, compute_gae, successor_values
from .errors import check_finite
from .networks import ActorCriticPolicy, sample_categorical
from .schedules import annealed_lr
from .seeding import deterministic_torch, resolve_device, seed_everything
from .tracking import RunTracker, TrainResult
from .vec_env import TensorVecEnv


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
