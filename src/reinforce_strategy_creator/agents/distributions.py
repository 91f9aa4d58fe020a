"""Action distributions: the pluggable part of an actor-critic policy.

The PPO and A2C loops (``ppo.py``, ``a2c.py``) never look inside a policy's actions. A stacked
population returns ``(params, mask, value)`` per row (``mask``: the components in play, or
``None``), and ``pop.template.action_dist`` turns the parameters into actions and scores:

* ``sample(params, mask, generator)``: one stored action per row, drawn from ``generator``;
* ``log_prob(params, mask, x)``: per row (the rollout's old log-probabilities);
* ``log_prob_entropy(params, mask, x)``: (log-prob, entropy) per row, differentiable (the loss);
* ``env_action(x, mask)``: what the env steps with (an index, or target weights).

:class:`Categorical` is the distribution over a discrete action table (the single-asset
positions; docs/agents.md). The simplex distributions over portfolio weights (logistic-normal,
Dirichlet) are ``portfolio_policies.LogisticNormal`` and ``portfolio_policies.MaskedDirichlet``.
"""

from __future__ import annotations

from typing import Protocol

import torch

from .networks import sample_categorical


class ActionDistribution(Protocol):
    def sample(
        self, params: torch.Tensor, mask: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor: ...

    def log_prob(self, params: torch.Tensor, mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor: ...

    def log_prob_entropy(
        self, params: torch.Tensor, mask: torch.Tensor | None, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def env_action(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor: ...


class Categorical:
    """A categorical over a discrete action table: ``params`` are logits (..., A), the stored
    action is the int64 index, and the env steps with that index (``mask`` is unused)."""

    def sample(self, params: torch.Tensor, mask, generator: torch.Generator) -> torch.Tensor:
        return sample_categorical(params, generator)

    def log_prob(self, params: torch.Tensor, mask, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(params, -1).gather(-1, x.unsqueeze(-1)).squeeze(-1)

    def log_prob_entropy(
        self, params: torch.Tensor, mask, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logp = torch.log_softmax(params, -1)
        return logp.gather(-1, x.unsqueeze(-1)).squeeze(-1), -(logp.exp() * logp).sum(-1)

    def env_action(self, x: torch.Tensor, mask) -> torch.Tensor:
        return x


CATEGORICAL = Categorical()
