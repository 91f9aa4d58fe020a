"""Proximal Policy Optimisation (clipped surrogate), one readable file, CleanRL style.

Algorithm (Schulman et al. 2017) as implemented here:
1. Collect ``num_steps`` transitions from each of B vector-env lanes with the current
   stochastic policy (tensors on the agent's device; see ``common.TensorVecEnv`` for how
   autoreset conventions and truncation are handled).
2. GAE(lambda) advantages; bootstrap from V(true last obs) on truncation, never on
   termination; gymnasium NEXT_STEP reset transitions are masked out of every loss.
3. ``update_epochs`` passes over shuffled minibatches: clipped policy objective,
   (optionally clipped) value loss, entropy bonus, global gradient-norm clipping; optional
   early stop of the epoch loop when the approximate KL exceeds ``target_kl``.
4. Learning rate annealed linearly to 0 over the run (``anneal_lr``).

``train_ppo`` evaluates ``eval_fn(policy)`` every ``eval_every`` updates, keeps the best
weights, and stops after ``patience`` evaluations without improvement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .buffers import RolloutBuffer, compute_gae, successor_values
from .common import (
    AgentConfig,
    AgentConfigError,
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
class PPOConfig(AgentConfig):
    total_steps: int = field(default=100_000, metadata=rule(positive_int, "must be a positive int"))
    num_steps: int = field(default=128, metadata=rule(positive_int, "must be a positive int (steps per lane per rollout)"))
    learning_rate: float = field(default=2.5e-4, metadata=rule(positive, "must be > 0"))
    anneal_lr: bool = field(default=True, metadata=rule(lambda x: isinstance(x, bool), "must be true/false"))
    gamma: float = field(default=0.99, metadata=rule(discount, "must be in (0, 1]"))
    gae_lambda: float = field(default=0.95, metadata=rule(unit_interval, "must be in [0, 1]"))
    num_minibatches: int = field(default=4, metadata=rule(positive_int, "must be a positive int"))
    update_epochs: int = field(default=4, metadata=rule(positive_int, "must be a positive int"))
    norm_adv: bool = field(default=True, metadata=rule(lambda x: isinstance(x, bool), "must be true/false"))
    clip_coef: float = field(default=0.2, metadata=rule(positive, "must be > 0"))
    clip_vloss: bool = field(default=True, metadata=rule(lambda x: isinstance(x, bool), "must be true/false"))
    ent_coef: float = field(default=0.01, metadata=rule(non_negative, "must be >= 0"))
    vf_coef: float = field(default=0.5, metadata=rule(non_negative, "must be >= 0"))
    max_grad_norm: float = field(default=0.5, metadata=rule(positive, "must be > 0"))
    target_kl: float | None = field(default=None, metadata=rule(lambda x: x is None or x > 0, "must be > 0 or null"))
    hidden_sizes: tuple = field(default=(64, 64), metadata=rule(hidden_sizes_ok, "must be a non-empty list of positive ints"))
    activation: str = field(default="tanh", metadata=rule(lambda x: x in ACTIVATIONS, f"must be one of {sorted(ACTIVATIONS)}"))
    log_every: int = field(default=1, metadata=rule(positive_int, "must be a positive int (updates per history row)"))

    @classmethod
    def default_prefix(cls) -> str:
        return "training.ppo"

    def check_batch(self, num_envs: int, prefix: str | None = None) -> None:
        prefix = prefix or self.default_prefix()
        rollout = self.num_steps * int(num_envs)
        if self.num_minibatches > rollout:
            raise AgentConfigError(
                f"{prefix}.num_minibatches={self.num_minibatches} is larger than the rollout "
                f"({self.num_steps} num_steps x {num_envs} lanes = {rollout} transitions): each minibatch would be "
                f"empty; use at most {rollout} minibatches or a longer rollout"
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


def ppo_loss(policy: ActorCriticPolicy, cfg: PPOConfig, obs, actions, old_logprob, old_values, adv, returns, valid):
    """Clipped PPO loss on one minibatch; returns (loss, pg_loss, v_loss, entropy, approx_kl)."""
    logits, value = policy(obs)
    logp_all = torch.log_softmax(logits, -1)
    logprob = logp_all.gather(-1, actions[:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    n = valid.sum().clamp_min(1.0)
    logratio = logprob - old_logprob
    ratio = logratio.exp()
    if cfg.norm_adv:
        mean = (adv * valid).sum() / n
        std = (((adv - mean) ** 2 * valid).sum() / n).sqrt()
        adv = (adv - mean) / (std + 1e-8)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef))
    pg_loss = (pg * valid).sum() / n
    if cfg.clip_vloss:
        v_clipped = old_values + (value - old_values).clamp(-cfg.clip_coef, cfg.clip_coef)
        v = torch.max((value - returns) ** 2, (v_clipped - returns) ** 2)
    else:
        v = (value - returns) ** 2
    v_loss = 0.5 * (v * valid).sum() / n
    ent = (entropy * valid).sum() / n
    loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
    with torch.no_grad():
        approx_kl = (((ratio - 1) - logratio) * valid).sum() / n
    return loss, pg_loss, v_loss, ent, approx_kl


def _train(envs, cfg: PPOConfig, seed, dev, eval_fn, eval_every, patience, progress) -> TrainResult:
    gen = seed_everything(seed)
    env = TensorVecEnv(envs, dev)
    B, T = env.num_envs, cfg.num_steps
    policy = ActorCriticPolicy(env.obs_dim, env.n_actions, cfg.hidden_sizes, cfg.activation, algorithm="ppo").to(dev)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate, eps=1e-5)
    buf = RolloutBuffer(T, B, env.obs_dim, dev)
    batch = T * B
    mb_size = max(1, batch // cfg.num_minibatches)
    num_updates = max(1, cfg.total_steps // batch)
    tracker = RunTracker(policy, B, dev, total_steps=num_updates * batch, eval_fn=eval_fn, eval_every=eval_every,
                         patience=patience, progress=progress, log_every=cfg.log_every, desc="ppo")
    obs = env.reset(seed=seed)

    for update in range(1, num_updates + 1):
        if cfg.anneal_lr:
            optimizer.param_groups[0]["lr"] = cfg.learning_rate * (1.0 - (update - 1.0) / num_updates)

        # ---- rollout
        policy.eval()
        with torch.no_grad():
            for t in range(T):
                logits, value = policy(obs)
                action = sample_categorical(logits, gen)
                logprob = torch.log_softmax(logits, -1).gather(-1, action[:, None]).squeeze(-1)
                step = env.step(action)
                buf.store(t, obs, action, logprob, value, step)
                tracker.on_step(step)
                obs = step.obs
            next_values = successor_values(buf, policy.value)
            adv, returns = compute_gae(buf.rewards, buf.values, next_values, buf.terminated, buf.dones,
                                       buf.valid, cfg.gamma, cfg.gae_lambda)

        # ---- optimise
        policy.train()
        b_obs = buf.obs.reshape(batch, -1)
        b_act, b_logp = buf.actions.reshape(-1), buf.logprobs.reshape(-1)
        b_val, b_adv, b_ret, b_valid = buf.values.reshape(-1), adv.reshape(-1), returns.reshape(-1), buf.valid.reshape(-1)
        for _epoch in range(cfg.update_epochs):
            perm = torch.randperm(batch, generator=gen).to(dev)
            kl_stop = False
            for start in range(0, batch, mb_size):
                mb = perm[start:start + mb_size]
                loss, pg_loss, v_loss, ent, approx_kl = ppo_loss(
                    policy, cfg, b_obs[mb], b_act[mb], b_logp[mb], b_val[mb], b_adv[mb], b_ret[mb], b_valid[mb])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                optimizer.step()
                if cfg.target_kl is not None and float(approx_kl) > cfg.target_kl:
                    kl_stop = True
                    break
            if kl_stop:
                break
        # a NaN/inf anywhere in the update poisons the weights, so the last minibatch's loss shows it
        check_finite(loss.item(), "ppo", seed, update)
        tracker.add_metrics(policy_loss=pg_loss.item(), value_loss=v_loss.item(), entropy=ent.item())
        tracker.end_update(update, last=update == num_updates)
        if tracker.stop:
            break
    return tracker.finish()
