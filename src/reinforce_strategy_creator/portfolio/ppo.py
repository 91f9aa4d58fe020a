"""PPO for portfolios: a Dirichlet policy over weights on the batched ``PortfolioCore``, one file.

Reads like SB3's ``learn()`` / CleanRL: per update ``_collect_rollout`` (Dirichlet samples ->
target weights -> ``PortfolioCore.step``) -> GAE (``agents.buffers.compute_gae``) ->
``_optimise`` (minibatch epochs of :func:`portfolio_ppo_loss`), then each member's
``RunTracker`` evaluates, logs and early-stops. Hyperparameters are the single-asset
``params.agents.PPOConfig`` (same fields, same validation).

Every run trains K >= 1 *members* (seeds) at once, the way ``agents/ppo.py`` does:
parameters stacked on a leading member axis (:class:`~.policies.StackedPortfolio`), one batched
forward per step, per-member losses / gradient clipping / ``StackedAdam`` steps, each member on
its own ``PortfolioCore`` (its own episode-start RNG) with its own generator for Dirichlet draws
and minibatch shuffles. Nothing of a member depends on the other members (tested), so a
population of K and K runs of one member give the same weights.

This module also holds what the three portfolio algorithms share: :class:`PortfolioLanes` (the
members' cores as one tensor env yielding ``agents.vec_env.Step``) and the rollout helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..agents.buffers import RolloutBuffer
from ..agents.population import check_members
from ..agents.portfolio_policies import DISTRIBUTIONS, PortfolioActorCritic, StackedPortfolio, members_of
from ..agents.ppo import run_ppo_population
from ..agents.seeding import deterministic_torch, resolve_device
from ..agents.tracking import TrainResult
from ..agents.vec_env import Step
from ..env.portfolio import PortfolioCore, PortfolioInputError
from ..params.agents import REWARD_BASELINES, PortfolioPPOConfig, PPOConfig

__all__ = ["PortfolioLanes", "PortfolioPPOConfig", "portfolio_ppo_loss", "train_portfolio_ppo"]

assert DISTRIBUTIONS == ("logistic_normal", "dirichlet")


class PortfolioLanes:
    """K members' ``PortfolioCore`` s (B lanes each, autoreset) as one tensor env; lanes are
    member-major (member k owns lanes ``k*B .. (k+1)*B - 1``). ``step`` takes (K*B, N) float64
    weights and returns an ``agents.vec_env.Step`` whose ``next_obs`` is the true successor
    (the core's ``final_obs`` where an episode ended)."""

    def __init__(
        self,
        cores: Sequence[PortfolioCore],
        seeds: Sequence[int],
        device: torch.device,
        reward_baseline: str = "none",
    ):
        if reward_baseline not in REWARD_BASELINES:
            raise PortfolioInputError(
                f"reward_baseline={reward_baseline!r} unknown; choose one of {list(REWARD_BASELINES)}"
            )
        self.reward_baseline = reward_baseline
        #: (K*B,) float32 log return of the equal-weight book over the last step's bar (per lane),
        #: or None without a baseline
        self.baseline: torch.Tensor | None = None
        if not cores:
            raise PortfolioInputError("a portfolio run needs at least one member core")
        c0 = cores[0]
        for i, c in enumerate(cores):
            if not c.autoreset:
                raise PortfolioInputError(f"member {i}: training needs a PortfolioCore with autoreset=True")
            if (c.num_envs, c.obs_dim, c.n_assets) != (c0.num_envs, c0.obs_dim, c0.n_assets):
                raise PortfolioInputError(
                    f"member {i} (seed {seeds[i]}) has {c.num_envs} lanes, obs_dim {c.obs_dim}, "
                    f"{c.n_assets} assets but member 0 has {c0.num_envs}, {c0.obs_dim}, {c0.n_assets}"
                )
        self.cores, self.seeds, self.device = list(cores), [int(s) for s in seeds], device
        self.k, self.lanes = len(cores), c0.num_envs
        self.num_envs = self.k * self.lanes
        self.n_assets, self.obs_dim = c0.n_assets, c0.obs_dim
        self.window, self.n_features = c0.config.window, c0.n_features

    def reset(self) -> torch.Tensor:
        return torch.cat([c.reset(seed=s) for c, s in zip(self.cores, self.seeds, strict=True)]).to(
            self.device
        )

    def step(self, weights: torch.Tensor) -> Step:
        b = self.lanes
        parts, base = [], []
        for i, core in enumerate(self.cores):
            t0 = core.t
            obs, rew, term, trunc, info = core.step(weights[i * b : (i + 1) * b])
            nxt = info.get("final_obs", obs)
            parts.append((obs, rew, term, trunc, nxt))
            if self.reward_baseline == "equal_weight":
                base.append(equal_weight_log_return(core, t0, info["bar"]))
        obs, rew, term, trunc, nxt = (torch.cat(x) for x in zip(*parts, strict=True))
        if base:
            self.baseline = torch.cat(base).to(self.device, torch.float32)
        f = dict(device=self.device)
        return Step(
            obs=obs.to(**f),
            reward=rew.to(torch.float32).to(**f),
            terminated=term.to(**f),
            truncated=trunc.to(**f),
            next_obs=nxt.to(**f),
            valid=torch.ones_like(term, dtype=torch.bool).to(**f),
        )


def equal_weight_log_return(core: PortfolioCore, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
    """(B,) float64 log return from bar ``t0`` to ``t1`` of a book equally weighted over the
    assets tradable at both bars (0 where none is): the same for every action, so subtracting it
    from the reward changes no policy's ranking (a control variate for the common market move)."""
    ok = core.tradable.index_select(0, t0) & core.tradable.index_select(0, t1)
    ratio = core.close.index_select(0, t1) / core.close.index_select(0, t0)
    n = ok.sum(1)
    mean = torch.where(ok, ratio, torch.zeros_like(ratio)).sum(1) / n.clamp_min(1)
    return torch.where(n > 0, torch.log(mean), torch.zeros_like(mean))


def rollout_buffer(num_steps: int, env: PortfolioLanes, device: torch.device) -> RolloutBuffer:
    """``agents.buffers.RolloutBuffer`` whose actions are (T, lanes, N+1) Dirichlet points."""
    buf = RolloutBuffer(num_steps, env.num_envs, env.obs_dim, device)
    buf.actions = torch.zeros(num_steps, env.num_envs, env.n_assets + 1, device=device)
    return buf


def actor_critic_members(env: PortfolioLanes, seeds, cfg, algorithm: str, scaler, device):
    """Each member's initial :class:`PortfolioActorCritic` (built as a one-member run builds it,
    scaler loaded) and generator; the stacked population over them."""

    def factory():
        p = PortfolioActorCritic(
            env.n_assets,
            env.window,
            env.n_features,
            cfg.hidden_sizes,
            cfg.activation,
            algorithm=algorithm,
            distribution=getattr(cfg, "distribution", DISTRIBUTIONS[0]),
            log_std=getattr(cfg, "log_std", 0.0),
            log_concentration=getattr(cfg, "log_concentration", 1.0),
            decision_temperature=getattr(cfg, "decision_temperature", 1.0),
        )
        p.set_scaler(*scaler)
        return p

    members, gens = members_of(seeds, factory, device)
    return members, gens, StackedPortfolio(members)


@torch.no_grad()
def collect_rollout(env: PortfolioLanes, pop, buf: RolloutBuffer, trackers, obs, gens) -> torch.Tensor:
    """``num_steps`` vector steps of every member's stochastic policy (one batched forward;
    member k samples from its own generator); returns the next observation."""
    k, b = env.k, env.lanes
    tpl = pop.template
    for t in range(buf.num_steps):
        params, mask, value = pop(obs.reshape(k, b, -1))
        x = torch.cat([tpl.sample(params[i], mask[i], gens[i]) for i in range(k)])
        params, mask = params.reshape(k * b, -1), mask.reshape(k * b, -1)
        logprob = tpl.log_prob(params, mask, x)
        step = env.step(tpl.weights_of(x, mask))
        buf.store(t, obs, x, logprob, value.reshape(k * b), step)
        if env.baseline is not None:  # learn on the excess over equal weight; history keeps the reward
            buf.rewards[t] -= env.baseline
        trackers.on_step(step)
        obs = step.obs
    return obs


def policy_terms(pop, obs, actions):
    """(log-prob, entropy, value) of stored action points under the current members."""
    params, mask, value = pop(obs)
    tpl = pop.template
    return tpl.log_prob(params, mask, actions), tpl.entropy(params, mask), value


def masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of the valid entries: (K,) for (K, M), a scalar for (M,)."""
    n = valid.sum(-1, keepdim=True).clamp_min(1.0)
    return ((x * valid).sum(-1, keepdim=True) / n).squeeze(-1)


def portfolio_ppo_loss(pop, cfg: PPOConfig, obs, actions, old_logprob, old_values, adv, returns, valid):
    """The clipped PPO loss of ``agents.ppo.ppo_loss`` with Dirichlet log-probs; every reduction
    over the last axis (one loss per member for (K, M) inputs). Returns (loss, pg_loss, v_loss,
    entropy, approx_kl)."""
    logprob, entropy, value = policy_terms(pop, obs, actions)
    logratio = logprob - old_logprob
    ratio = logratio.exp()
    if cfg.norm_adv:
        mean = masked_mean(adv, valid).unsqueeze(-1)
        std = masked_mean((adv - mean) ** 2, valid).sqrt().unsqueeze(-1)
        adv = (adv - mean) / (std + 1e-8)
    pg_loss = masked_mean(
        torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)), valid
    )
    if cfg.clip_vloss:
        v_clipped = old_values + (value - old_values).clamp(-cfg.clip_coef, cfg.clip_coef)
        v = torch.max((value - returns) ** 2, (v_clipped - returns) ** 2)
    else:
        v = (value - returns) ** 2
    v_loss = 0.5 * masked_mean(v, valid)
    ent = masked_mean(entropy, valid)
    loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1) - logratio, valid)
    return loss, pg_loss, v_loss, ent, approx_kl


def train_portfolio_ppo(
    cores: Sequence[PortfolioCore],
    config: PPOConfig | dict | None = None,
    *,
    seeds: Sequence[int],
    scaler: tuple,
    device: str = "cpu",
    eval_fns: Sequence[Callable[[nn.Module], float] | None] | None = None,
    eval_every: int = 10,
    patience: int | None = None,
    progress: bool = False,
) -> list[TrainResult]:
    """Train one PPO member per ``(cores[k], seeds[k], eval_fns[k])`` (a population of one or
    more, module docstring); ``scaler`` = (mean, std) (F,) of the training features. One
    ``TrainResult`` per member, in order: ``policy`` is the :class:`PortfolioActorCritic` with
    the best ``eval_fn`` score (the final weights without one)."""
    cfg = _portfolio_config(config)
    eval_fns = check_members(cores, [int(s) for s in seeds], eval_fns)
    cfg.check_batch(int(cores[0].num_envs))
    dev = resolve_device(device)
    with deterministic_torch(dev):
        return _train(
            cores, cfg, [int(s) for s in seeds], scaler, dev, eval_fns, eval_every, patience, progress
        )


def _portfolio_config(config) -> PortfolioPPOConfig:
    """A :class:`PortfolioPPOConfig` from one, a plain ``PPOConfig`` (default distribution) or a dict."""
    if isinstance(config, PortfolioPPOConfig):
        return config
    if isinstance(config, PPOConfig):
        return PortfolioPPOConfig.from_params(config.to_dict())
    return PortfolioPPOConfig.from_params(config)


def _train(cores, cfg: PPOConfig, seeds, scaler, dev, eval_fns, eval_every, patience, progress):
    env = PortfolioLanes(cores, seeds, dev, getattr(cfg, "reward_baseline", "none"))
    members, gens, pop = actor_critic_members(env, seeds, cfg, "ppo", scaler, dev)
    buf = rollout_buffer(cfg.num_steps, env, dev)
    return run_ppo_population(
        env,
        members,
        gens,
        pop,
        buf,
        cfg,
        seeds,
        dev,
        eval_fns,
        eval_every,
        patience,
        progress,
        desc="portfolio ppo",
        loss_fn=portfolio_ppo_loss,
        collect_fn=collect_rollout,
    )
