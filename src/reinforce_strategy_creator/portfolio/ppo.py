"""PPO for portfolios: configuration of ``agents.ppo.run_ppo_population`` on ``PortfolioCore``.

The loop, the loss (``agents.ppo.ppo_loss``), the per-member clipping and ``StackedAdam`` are the
single-asset PPO's; what is portfolio here is the env (:class:`PortfolioLanes`: the members'
cores as one tensor env, with an optional equal-weight reward baseline) and the policy
(``PortfolioActorCritic``: the shared per-asset encoder with a logistic-normal or Dirichlet
distribution over ``[assets, cash]``, ``agents.distributions``). Hyperparameters are
``params.agents.PortfolioPPOConfig`` (the PPO fields plus the distribution's).

Every run trains K >= 1 *members* (seeds) at once, the way ``agents/ppo.py`` does, each on its
own ``PortfolioCore`` (its own episode-start RNG) with its own generator for the distribution's
draws and minibatch shuffles. Nothing of a member depends on the other members (tested), so a
population of K and K runs of one member give the same weights.

This module also holds what the portfolio actor-critics share: :class:`PortfolioLanes`, the
rollout buffer of weight actions and the members' construction.
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

__all__ = ["PortfolioLanes", "PortfolioPPOConfig", "train_portfolio_ppo"]

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
    )
