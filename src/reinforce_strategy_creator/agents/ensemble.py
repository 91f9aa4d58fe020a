"""Seed ensembles: one policy made of every seed of an agent (docs/agents.md, "Seed ensembles").

A single seed's policy carries the noise of its initialisation and of its episodes; averaging
the seeds' action probabilities (actor-critic) or Q-values (DQN) keeps what the seeds agree on.
The ensemble needs no training and no new weights: an artifact already holds every seed's
weights, and the rule is a word in its JSON spec, so an ensemble loads as safely as one seed.
In ledgers, tables and the registry the ensemble is the seed :data:`ENSEMBLE_SEED` of its agent.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..candidates import ENSEMBLE_SEED, seed_label
from ..errors import InputError
from .networks import sample_categorical

__all__ = ["ENSEMBLE_SEED", "RULES", "EnsembleError", "SeedEnsemble", "ensemble_rule", "seed_label"]

#: The averaging rule of each policy kind: the ensemble's action scores.
RULES = {"actor_critic": "mean_probability", "q": "mean_q"}


class EnsembleError(InputError):
    """An ensemble cannot be built (no members, mixed kinds, unknown rule)."""


def ensemble_rule(kind: str) -> str:
    if kind not in RULES:
        raise EnsembleError(f"policy kind {kind!r} has no ensemble rule; known kinds: {sorted(RULES)}.")
    return RULES[kind]


class SeedEnsemble(nn.Module):
    """Acts on the mean of its members' action probabilities (``mean_probability``) or Q-values
    (``mean_q``); deterministic acting takes the argmax of that mean."""

    def __init__(self, members: Sequence[nn.Module], rule: str):
        super().__init__()
        if not members:
            raise EnsembleError("an ensemble needs at least one member policy.")
        kinds = {m.spec["kind"] for m in members}
        if len(kinds) != 1 or rule != ensemble_rule(next(iter(kinds))):
            raise EnsembleError(
                f"ensemble rule {rule!r} does not fit member kinds {sorted(kinds)}; rules by kind: {RULES}."
            )
        self.members = nn.ModuleList(members)
        self.rule = rule
        self.spec = {**members[0].spec, "ensemble": {"rule": rule, "members": len(members)}}

    def scores(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, n_actions): the mean probability of each action, or its mean Q-value."""
        obs = obs.float()
        if self.rule == "mean_probability":
            return torch.stack([m.logits(obs).softmax(-1) for m in self.members]).mean(0)
        return torch.stack([m(obs) for m in self.members]).mean(0)

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        scores = self.scores(obs)
        if deterministic or self.rule == "mean_q":
            return scores.argmax(-1)
        return sample_categorical(scores.clamp_min(1e-12).log(), generator)
