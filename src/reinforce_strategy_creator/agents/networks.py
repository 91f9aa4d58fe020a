"""Small MLP networks and the two policy modules the agents train.

* :class:`ActorCriticPolicy` (PPO, A2C): separate actor and critic MLPs (no shared trunk,
  which is the more stable choice for small problems), orthogonal initialisation with a
  small-gain policy head so the initial policy is near uniform.
* :class:`QPolicy` (DQN): an MLP Q-network with an optional dueling head
  ``Q = V + A - mean(A)``; acting is greedy over Q.

Both carry a JSON-able ``spec`` dict; :func:`reinforce_strategy_creator.agents.policy.build_policy`
rebuilds an untrained module of the same architecture from it so that
``load_state_dict`` restores trained weights. Observations are flat vectors (the trading
env flattens its feature window), so MLPs are the right default.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(
    in_dim: int, hidden: tuple[int, ...], out_dim: int | None, activation: str, out_gain: float = 1.0
) -> nn.Sequential:
    """``in -> hidden... -> out`` with orthogonal init; ``out_dim=None`` ends after the last hidden layer."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} unknown; choose one of {sorted(ACTIVATIONS)}")
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [layer_init(nn.Linear(d, h)), act()]
        d = h
    if out_dim is not None:
        layers.append(layer_init(nn.Linear(d, out_dim), gain=out_gain))
    return nn.Sequential(*layers)


class ActorCriticPolicy(nn.Module):
    """Categorical actor + state-value critic over flat observations."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden_sizes=(64, 64),
        activation: str = "tanh",
        algorithm: str = "ppo",
    ):
        super().__init__()
        hidden = tuple(int(h) for h in hidden_sizes)
        self.spec: dict[str, Any] = {
            "algorithm": algorithm,
            "kind": "actor_critic",
            "obs_dim": int(obs_dim),
            "n_actions": int(n_actions),
            "network": {"hidden_sizes": list(hidden), "activation": activation},
        }
        self.actor = mlp(obs_dim, hidden, n_actions, activation, out_gain=0.01)
        self.critic = mlp(obs_dim, hidden, 1, activation, out_gain=1.0)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(obs), self.value(obs)

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Actions (B,) int64: argmax of logits, or a sample from the categorical policy."""
        logits = self.actor(obs.float())
        if deterministic:
            return logits.argmax(-1)
        return sample_categorical(logits, generator)

    def decide(self, obs: torch.Tensor, bar: int | None = None) -> torch.Tensor:
        """The deterministic action (B,) (a replay decider, ``ensemble.PolicyLanes``)."""
        return self.act(obs, deterministic=True)


class QPolicy(nn.Module):
    """Q-network (optionally dueling); acts greedily over Q."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden_sizes=(128, 128),
        activation: str = "relu",
        dueling: bool = True,
        algorithm: str = "dqn",
    ):
        super().__init__()
        hidden = tuple(int(h) for h in hidden_sizes)
        self.dueling = bool(dueling)
        self.spec = {
            "algorithm": algorithm,
            "kind": "q",
            "obs_dim": int(obs_dim),
            "n_actions": int(n_actions),
            "network": {"hidden_sizes": list(hidden), "activation": activation, "dueling": self.dueling},
        }
        self.trunk = mlp(obs_dim, hidden, None, activation)
        d = hidden[-1]
        if self.dueling:
            self.value_head = layer_init(nn.Linear(d, 1), gain=1.0)
            self.adv_head = layer_init(nn.Linear(d, n_actions), gain=1.0)
        else:
            self.q_head = layer_init(nn.Linear(d, n_actions), gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.trunk(obs)
        if self.dueling:
            a = self.adv_head(h)
            return self.value_head(h) + a - a.mean(-1, keepdim=True)
        return self.q_head(h)

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Greedy actions (B,). DQN's policy is greedy; ``deterministic`` is accepted for a uniform API."""
        return self.forward(obs.float()).argmax(-1)

    def decide(self, obs: torch.Tensor, bar: int | None = None) -> torch.Tensor:
        """The greedy action (B,) (a replay decider, ``ensemble.PolicyLanes``)."""
        return self.act(obs, deterministic=True)


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gumbel-max sampling with an explicit generator (reproducible, device-agnostic)."""
    u = torch.rand(
        logits.shape,
        generator=generator,
        dtype=logits.dtype,
        device="cpu" if generator is not None else logits.device,
    )
    u = u.to(logits.device).clamp_(1e-12, 1.0 - 1e-7)
    return (logits - torch.log(-torch.log(u))).argmax(-1)
