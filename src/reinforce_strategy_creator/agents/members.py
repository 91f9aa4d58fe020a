"""What a population steps and trains, chosen by its member envs.

One loop per algorithm (``ppo.py``, ``a2c.py``, ``dqn.py``) serves two kinds of member env:

* gymnasium vector envs over the discrete position table (``TradingVectorEnv``): the lanes are
  :class:`~.population.MemberEnvs`; the actor-critic is the MLP ``ActorCriticPolicy`` with a
  categorical over the positions, the Q-network the ``QPolicy`` over the same table
  (:class:`PositionTable`);
* ``env.portfolio.PortfolioCore`` s (an N-asset book): the lanes are
  :class:`~.population.PortfolioLanes`; the actor-critic is the shared-per-asset
  ``PortfolioActorCritic`` with the config's distribution over the simplex (logistic-normal or
  Dirichlet), the Q-network ``PortfolioQ`` over the allocation table (:class:`AllocationTable`,
  invalid allocations masked). Both networks standardise the features with ``scaler`` = (mean,
  std) of the training features.

Each member's initial weights and generator are made as a one-member run makes them
(:func:`seeded_members`), independent of the other members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..env.portfolio import PortfolioCore
from ..params.agents import AgentConfigError
from .networks import ActorCriticPolicy, QPolicy
from .population import MemberEnvs, PopulationActorCritic, PopulationQ, PortfolioLanes
from .portfolio_policies import (
    PortfolioActorCritic,
    PortfolioQ,
    StackedPortfolio,
    allocation_weights,
)
from .seeding import seed_everything


def is_portfolio(member_envs: Sequence[Any]) -> bool:
    """Whether the members are ``PortfolioCore`` s (all of them) or vector envs (none of them)."""
    kinds = {isinstance(e, PortfolioCore) for e in member_envs}
    if len(kinds) > 1:
        raise AgentConfigError(
            "a population's member envs must all be PortfolioCore or all be vector envs, got "
            f"{[type(e).__name__ for e in member_envs]}"
        )
    return kinds == {True}


def member_env(member_envs: Sequence[Any], seeds: Sequence[int], dev: torch.device, cfg):
    """The members' lanes as one member-major tensor env with the config's ``reward_baseline``
    and ``deviation_penalty``:
    :class:`PortfolioLanes` over ``PortfolioCore`` s (``cfg`` is checked for its members by
    ``params.agents.agent_config``), else :class:`MemberEnvs`."""
    if is_portfolio(member_envs):
        return PortfolioLanes(member_envs, seeds, dev, cfg.reward_baseline, cfg.deviation_penalty)
    return MemberEnvs(member_envs, seeds, dev, cfg.reward_baseline, cfg.deviation_penalty)


def seeded_members(seeds: Sequence[int], factory: Callable[[], nn.Module], device) -> tuple[list, list]:
    """Each member's initial weights and generator exactly as a one-member run makes them
    (``seed_everything(seed)`` then the factory): independent of the other members."""
    members, gens = [], []
    for s in seeds:
        gens.append(seed_everything(int(s)))
        members.append(factory().to(device))
    return members, gens


def _check_scaler(env, scaler) -> None:
    if isinstance(env, PortfolioLanes) and scaler is None:
        raise AgentConfigError(
            "PortfolioCore members need scaler=(mean, std) of the training features "
            "(panel.fit_feature_scaler over the training panel)"
        )
    if not isinstance(env, PortfolioLanes) and scaler is not None:
        raise AgentConfigError(
            "scaler is for PortfolioCore members; vector envs observe features already scaled"
        )


def actor_critic_population(env, seeds: Sequence[int], cfg, algorithm: str, dev, scaler=None):
    """(members, generators, stacked population) of the actor-critic that fits ``env``."""
    _check_scaler(env, scaler)
    if isinstance(env, PortfolioLanes):

        def factory() -> nn.Module:
            p = PortfolioActorCritic(
                env.n_assets,
                env.window,
                env.n_features,
                cfg.hidden_sizes,
                cfg.activation,
                algorithm=algorithm,
                distribution=cfg.distribution,
                log_std=cfg.log_std,
                log_concentration=cfg.log_concentration,
                decision_temperature=cfg.decision_temperature,
            )
            p.set_scaler(*scaler)
            return p

        members, gens = seeded_members(seeds, factory, dev)
        if cfg.start_at_benchmark:
            for m in members:
                start_at_benchmark(m, None)
        return members, gens, StackedPortfolio(members)

    def factory() -> nn.Module:
        return ActorCriticPolicy(
            env.obs_dim, env.n_actions, cfg.hidden_sizes, cfg.activation, algorithm=algorithm
        )

    members, gens = seeded_members(seeds, factory, dev)
    if cfg.start_at_benchmark:
        for m in members:
            start_at_benchmark(m, env.benchmark_action)
    return members, gens, PopulationActorCritic(members)


def q_population(env, seeds: Sequence[int], cfg, dev, scaler=None):
    """(members, generators, stacked-population class, action table) of the Q-network that
    fits ``env``."""
    _check_scaler(env, scaler)
    if isinstance(env, PortfolioLanes):

        def factory() -> nn.Module:
            q = PortfolioQ(
                env.n_assets,
                env.window,
                env.n_features,
                cfg.hidden_sizes,
                cfg.activation,
                dueling=cfg.dueling,
            )
            q.set_scaler(*scaler)
            return q

        members, gens = seeded_members(seeds, factory, dev)
        if cfg.start_at_benchmark:
            for m in members:
                start_at_benchmark(m, None)
        return members, gens, StackedPortfolio, AllocationTable(members[0])

    def factory() -> nn.Module:
        return QPolicy(env.obs_dim, env.n_actions, cfg.hidden_sizes, cfg.activation, dueling=cfg.dueling)

    members, gens = seeded_members(seeds, factory, dev)
    if cfg.start_at_benchmark:
        for m in members:
            start_at_benchmark(m, env.benchmark_action)
    return members, gens, PopulationQ, PositionTable(env.n_actions)


#: the untrained policy's lead of the benchmark action (``start_at_benchmark``), in logits or
#: Q-values: enough to make it the argmax, small enough to leave exploration about uniform
START_LEAD = 0.05


@torch.no_grad()
def start_at_benchmark(policy: nn.Module, action: int | None) -> None:
    """Set ``policy``'s output layer so that, untrained, it chooses the benchmark's book
    (``start_at_benchmark``): zero weights and a bias that leads with the benchmark's action by
    0.05 (:data:`START_LEAD`), so the untrained policy is exactly that book under the argmax and
    explores about uniformly. The benchmark action is the discrete ``action`` (the position
    closest to fully long) of an ``ActorCriticPolicy`` or a ``QPolicy``, equal weight for a
    ``PortfolioQ``; a ``PortfolioActorCritic`` gets equal asset scores and cash 5 below them
    (its deterministic book: the assets equally, almost no cash). Only the output layer
    changes, after the seed's draws, so every other weight is the plain start's."""
    if isinstance(policy, ActorCriticPolicy | QPolicy) and action is None:
        raise AgentConfigError(
            "start_at_benchmark needs the project's TradingVectorEnv members with discrete positions "
            "(the benchmark is the position closest to 1); set start_at_benchmark: false for other envs"
        )
    if isinstance(policy, ActorCriticPolicy):
        _lead(policy.actor[-1], action)
    elif isinstance(policy, QPolicy):
        _lead(policy.adv_head if policy.dueling else policy.q_head, action)
    elif isinstance(policy, PortfolioActorCritic):
        _lead(policy.score, None)
        _lead(policy.cash_score, None)
        policy.cash_score.bias.fill_(-5.0)
    elif isinstance(policy, PortfolioQ):
        _lead(policy.asset_head, None)
        _lead(policy.book_head, 1)  # [all cash, equal weight]
    else:
        raise AgentConfigError(f"start_at_benchmark: no benchmark start for a {type(policy).__name__}")


def _lead(layer: nn.Linear, action: int | None) -> None:
    layer.weight.zero_()
    layer.bias.zero_()
    if action is not None:
        layer.bias[action] = START_LEAD


# --------------------------------------------------------------------------- Q action tables
class PositionTable:
    """The discrete position table of a ``QPolicy``: every action is valid, exploration is
    uniform over all of them and the action index is the env's action."""

    def __init__(self, n_actions: int):
        self.n_actions = int(n_actions)

    def valid(self, obs: torch.Tensor) -> None:
        return None

    def explore(self, greedy: torch.Tensor, valid, eps: float, gen: torch.Generator) -> torch.Tensor:
        """Replace each of the (B,) greedy actions by a uniform random one with probability
        ``eps`` (draws B uniforms then B actions from ``gen``, whatever ``eps`` is)."""
        B = greedy.shape[0]
        explore_ = torch.rand(B, generator=gen).to(greedy.device) < eps
        random_a = torch.randint(0, self.n_actions, (B,), generator=gen).to(greedy.device)
        return torch.where(explore_, random_a, greedy)

    def env_action(self, action: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        return action


class AllocationTable:
    """The allocation table of a ``PortfolioQ`` (``portfolio_policies.ALLOCATIONS``): all-in on
    an untradable asset (and equal weight when nothing is tradable) is invalid, never explored;
    the env gets the allocation's weights."""

    def __init__(self, template: PortfolioQ):
        self.template, self.layout = template, template.layout

    def valid(self, obs: torch.Tensor) -> torch.Tensor:
        """(..., N+2) valid actions of observations (..., obs_dim)."""
        return self.template.valid_actions(self.layout.split(obs.float()).tradable)

    def explore(
        self, greedy: torch.Tensor, valid: torch.Tensor, eps: float, gen: torch.Generator
    ) -> torch.Tensor:
        """Replace each of the (B,) greedy actions, with probability ``eps``, by one drawn
        uniformly from that lane's valid actions (``valid`` (B, A)); draws B + B*A uniforms from
        ``gen`` whatever ``eps`` is."""
        B, A = valid.shape
        explore_ = torch.rand(B, generator=gen).to(greedy.device) < eps
        u = torch.rand(B, A, generator=gen).to(greedy.device)
        random_a = torch.where(valid, u, torch.full_like(u, -1.0)).argmax(-1)
        return torch.where(explore_, random_a, greedy)

    def env_action(self, action: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """(B, N) float64 weights of the allocations ``action`` given the observations ``obs``."""
        return allocation_weights(action, self.layout.split(obs).tradable)
