"""Seed ensembles and lanes of trained policies: the deciders a replay runs trained agents with.

:class:`SeedEnsemble` is one policy made of every seed of an agent (docs/agents.md, "Seed
ensembles"). A single seed's policy carries the noise of its initialisation and of its episodes;
averaging the seeds' action probabilities (actor-critic), Q-values (DQN) or, at N >= 1 assets,
deterministic target weights keeps what the seeds agree on. The ensemble needs no training and no
new weights: an artifact already holds every seed's weights, and the rule is a word in its JSON
spec, so an ensemble loads as safely as one seed. In ledgers, tables and the registry the
ensemble is the seed :data:`ENSEMBLE_SEED` of its agent.

:class:`PolicyLanes` runs one trained policy (a seed or a seed ensemble) per lane of a replay,
for either kernel: actions over the position table at N = 1, target weights at N >= 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..candidates import ENSEMBLE_SEED, seed_label
from ..errors import InputError
from .networks import sample_categorical

__all__ = [
    "ENSEMBLE_SEED",
    "RULES",
    "EnsembleError",
    "PolicyLanes",
    "SeedEnsemble",
    "ensemble_rule",
    "seed_label",
]

#: The averaging rule of each policy kind: what the members' mean is taken of.
RULES = {
    "actor_critic": "mean_probability",
    "q": "mean_q",
    "portfolio_actor_critic": "mean_weights",
    "portfolio_q": "mean_weights",
}


class EnsembleError(InputError):
    """An ensemble cannot be built (no members, mixed kinds, unknown rule)."""


def ensemble_rule(kind: str) -> str:
    if kind not in RULES:
        raise EnsembleError(f"policy kind {kind!r} has no ensemble rule; known kinds: {sorted(RULES)}.")
    return RULES[kind]


class SeedEnsemble(nn.Module):
    """Acts on the mean of its members' action probabilities (``mean_probability``) or Q-values
    (``mean_q``), deterministic acting taking the argmax of that mean; or decides the mean of its
    members' deterministic target weights (``mean_weights``, portfolio policies)."""

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
        if self.rule == "mean_q":
            return torch.stack([m(obs) for m in self.members]).mean(0)
        raise EnsembleError(f"ensemble rule {self.rule!r} has no action scores; it decides weights")

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.rule == "mean_weights":
            if not deterministic:
                raise EnsembleError("a seed ensemble of portfolio policies only decides deterministically")
            return self.decide(obs)
        scores = self.scores(obs)
        if deterministic or self.rule == "mean_q":
            return scores.argmax(-1)
        return sample_categorical(scores.clamp_min(1e-12).log(), generator)

    @torch.no_grad()
    def decide(self, obs: torch.Tensor, bar: int | None = None) -> torch.Tensor:
        """The deterministic decision: the argmax action (B,) of the mean scores, or the (B, N)
        float64 mean of the members' target weights (``mean_weights``)."""
        if self.rule == "mean_weights":
            return torch.stack([m.decide(obs, bar).to(torch.float64) for m in self.members]).mean(0)
        return self.act(obs, deterministic=True)


class PolicyLanes:
    """``decide(obs, bar=None)`` for lanes that each run their own trained policy, deterministic:
    lane i decides on row i of ``obs`` with ``policies[i].decide`` (a seed's network or a
    :class:`SeedEnsemble`). The result is one action per lane (N = 1, ``env.replay``) or one row
    of target weights per lane (N >= 1, ``evaluation.replay.replay_weights``)."""

    def __init__(self, policies: Sequence[Any]):
        self.policies = list(policies)

    @classmethod
    def from_bundles(
        cls,
        lanes: Sequence[tuple[Any, int, str]],
        device: str = "cpu",
        loaded: dict[tuple[int, int], Any] | None = None,
    ) -> PolicyLanes:
        """``lanes``: ``(PolicyBundle, seed, name)`` per lane (``ENSEMBLE_SEED``: the bundle's seed
        ensemble; ``name``: how errors call it), each policy loaded from its safe artifact on
        ``device``. ``loaded`` (bundle id and seed -> policy), shared between calls, loads a
        policy once for every lane and fold that runs it."""
        loaded = {} if loaded is None else loaded
        policies = []
        for bundle, seed, name in lanes:
            key = (id(bundle), int(seed))
            if key not in loaded:
                loaded[key] = bundle.load_policy(seed, device, name=name)
            policies.append(loaded[key])
        return cls(policies)

    def __call__(self, obs: torch.Tensor, bar: int | None = None) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([p.decide(obs[i : i + 1], bar) for i, p in enumerate(self.policies)])
