"""Errors an agent raises while training, and the per-update divergence check.

A diverged run must stop loudly instead of saving a policy with NaN weights; both errors
are :class:`~reinforce_strategy_creator.errors.InputError`, so the CLI prints them as a
message that says what to change. See docs/agents.md.
"""

from __future__ import annotations

import math

from ..errors import InputError


class PolicySpecError(InputError):
    """A policy spec is missing a key or names an unknown architecture."""


class AgentEnvError(InputError):
    """The environment handed to an agent is not usable (e.g. non-discrete actions)."""


class TrainingDivergedError(InputError):
    """A loss became NaN or infinite: training stops, nothing is returned as though it were good.

    ``agent``, ``seed`` and ``update`` say where; the message says what to try.
    """

    def __init__(self, agent: str, seed: int, update: int, what: str = "loss", value: float = math.nan):
        self.agent, self.seed, self.update = agent, int(seed), int(update)
        self.what, self.value = what, value
        super().__init__(
            f"training.{agent} diverged: {what} is {value} at update {update} (seed {seed}); "
            f"no policy is saved. Lower training.{agent}.learning_rate, check max_grad_norm / "
            "reward_scale, or check the features for extreme values"
        )


def check_finite(value: float, agent: str, seed: int, update: int, what: str = "loss") -> None:
    """Raise :class:`TrainingDivergedError` unless ``value`` (a python float) is finite.

    Called once per update on a value the loop already syncs for logging, so it costs nothing.
    """
    if not math.isfinite(value):
        raise TrainingDivergedError(agent, seed, update, what, value)
