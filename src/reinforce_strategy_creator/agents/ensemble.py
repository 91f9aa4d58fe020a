"""Seed ensembles and lanes of trained policies: the deciders a replay runs trained agents with.

:class:`SeedEnsemble` is one policy made of every seed of an agent (docs/agents.md, "Seed
ensembles"). A single seed's policy carries the noise of its initialisation and of its episodes;
a majority vote of the seeds' actions over a discrete action table (N = 1) or the mean of
their deterministic target weights (N >= 1) keeps what the seeds agree on; a seed that holds
the benchmark (``start_at_benchmark``) counts as one vote however unsure its probabilities.
The ensemble needs no training and no new weights: an artifact already holds every seed's
weights, and the rule is a word in its JSON spec, so an ensemble loads as safely as one seed.
In ledgers, tables and the registry the
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

#: The rule a new ensemble of each policy kind gets: a majority vote of the members'
#: deterministic actions over a discrete action table, the mean of their target weights at N >= 1.
RULES = {
    "actor_critic": "vote",
    "q": "vote",
    "portfolio_actor_critic": "mean_weights",
    "portfolio_q": "mean_weights",
}
#: Every rule an ensemble of each kind may carry (artifacts written before the vote keep theirs).
KNOWN_RULES = {
    "actor_critic": ("vote", "mean_probability"),
    "q": ("vote", "mean_q"),
    "portfolio_actor_critic": ("mean_weights",),
    "portfolio_q": ("mean_weights",),
}


class EnsembleError(InputError):
    """An ensemble cannot be built (no members, mixed kinds, unknown rule)."""


def ensemble_rule(kind: str) -> str:
    if kind not in RULES:
        raise EnsembleError(f"policy kind {kind!r} has no ensemble rule; known kinds: {sorted(RULES)}.")
    return RULES[kind]


class SeedEnsemble(nn.Module):
    """Acts on a majority vote of its members' deterministic actions (``vote``: ties go to the
    mean probability or Q-value; stochastic acting samples from the vote shares), on the mean of
    their action probabilities (``mean_probability``) or Q-values (``mean_q``), deterministic
    acting taking the argmax of that mean; or decides the mean of its members' deterministic
    target weights (``mean_weights``, portfolio policies)."""

    def __init__(self, members: Sequence[nn.Module], rule: str):
        super().__init__()
        if not members:
            raise EnsembleError("an ensemble needs at least one member policy.")
        kinds = {m.spec["kind"] for m in members}
        if len(kinds) != 1 or rule not in KNOWN_RULES.get(next(iter(kinds)), ()):
            raise EnsembleError(
                f"ensemble rule {rule!r} does not fit member kinds {sorted(kinds)}; rules by kind: "
                f"{KNOWN_RULES}."
            )
        self.members = nn.ModuleList(members)
        self.rule = rule
        self.spec = {**members[0].spec, "ensemble": {"rule": rule, "members": len(members)}}

    def _outputs(self, obs: torch.Tensor) -> torch.Tensor:
        """(M, B, n_actions): each member's action probabilities (actor-critic) or Q-values (DQN),
        one forward pass per member; a member's deterministic action is their argmax."""
        obs = obs.float()
        if self.spec["kind"] == "actor_critic":
            return torch.stack([m.logits(obs).softmax(-1) for m in self.members])
        return torch.stack([m(obs) for m in self.members])

    def scores(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, n_actions): the mean probability of each action, its mean Q-value, or (``vote``)
        the share of members whose deterministic action it is."""
        if self.rule in ("mean_probability", "mean_q"):
            return self._outputs(obs).mean(0)
        if self.rule == "vote":
            return _vote_shares(self._outputs(obs), int(self.spec["n_actions"]))
        raise EnsembleError(f"ensemble rule {self.rule!r} has no action scores; it decides weights")

    def _vote(self, obs: torch.Tensor) -> torch.Tensor:
        """The most-voted action (B,); a tie goes to the tied action the members' mean
        probability (actor-critic) or mean Q-value (DQN) ranks first."""
        outputs = self._outputs(obs)
        shares, soft = _vote_shares(outputs, int(self.spec["n_actions"])), outputs.mean(0)
        top = shares == shares.max(-1, keepdim=True).values
        return torch.where(top, soft, torch.full_like(soft, -torch.inf)).argmax(-1)

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.rule == "mean_weights":
            if not deterministic:
                raise EnsembleError("a seed ensemble of portfolio policies only decides deterministically")
            return self.decide(obs)
        if self.rule == "vote" and deterministic:
            return self._vote(obs)
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


def _vote_shares(outputs: torch.Tensor, n_actions: int) -> torch.Tensor:
    """(B, n_actions) share of the members (``outputs`` (M, B, n_actions)) whose argmax each
    action is."""
    return torch.nn.functional.one_hot(outputs.argmax(-1), n_actions).to(torch.float32).mean(0)


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
