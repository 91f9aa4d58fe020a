"""Rebuild an untrained policy module from its JSON ``spec`` (for loading artifacts).

``build_policy(spec)`` -> module of the same architecture; then ``load_state_dict`` (e.g.
from a safetensors file) restores the trained weights. Nothing here executes code read
from disk: the spec is plain JSON data validated against the known kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .errors import PolicySpecError
from .networks import ACTIVATIONS, ActorCriticPolicy, QPolicy
from .portfolio_policies import build_portfolio_policy


def build_policy(spec: Mapping[str, Any]) -> nn.Module:
    if isinstance(spec, Mapping) and str(spec.get("kind", "")).startswith("portfolio_"):
        return build_portfolio_policy(spec)
    try:
        kind = spec["kind"]
        obs_dim = int(spec["obs_dim"])
        n_actions = int(spec["n_actions"])
        net = dict(spec["network"])
        hidden = tuple(int(h) for h in net["hidden_sizes"])
        activation = str(net["activation"])
        algorithm = str(spec.get("algorithm", kind))
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicySpecError(
            f"policy spec is missing or has a bad field ({exc!r}); it needs kind, obs_dim, n_actions, "
            "network.hidden_sizes and network.activation -- was it written by this package?"
        ) from exc
    if activation not in ACTIVATIONS:
        raise PolicySpecError(
            f"policy spec network.activation={activation!r} unknown; expected one of {sorted(ACTIVATIONS)}"
        )
    if kind == "actor_critic":
        return ActorCriticPolicy(obs_dim, n_actions, hidden, activation, algorithm=algorithm)
    if kind == "q":
        return QPolicy(
            obs_dim,
            n_actions,
            hidden,
            activation,
            dueling=bool(net.get("dueling", True)),
            algorithm=algorithm,
        )
    raise PolicySpecError(f"policy spec kind={kind!r} unknown; expected 'actor_critic' or 'q'")
