"""What every algorithm's hyperparameter block shares: the base class and the field types.

Each algorithm declares its own block in its own file (``PPOConfig`` in ``ppo.py``, ...), one
field per hyperparameter with its documentation, like CleanRL's ``Args``. They are
:class:`~..params.base.Params`, so a bad value is an error naming ``training.<agent>.<key>``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field

from ..params.base import Number as _Number
from ..params.base import ParameterError, Params, PositiveInt

#: > 0 (learning rates, clip ranges, gradient-norm limits, scales)
Positive = Annotated[_Number, Field(gt=0)]
#: >= 0 (loss coefficients)
NonNegative = Annotated[_Number, Field(ge=0)]
#: a discount factor in (0, 1] (0 would make every target myopic by accident)
Discount = Annotated[_Number, Field(gt=0, le=1)]
#: a fraction in [0, 1]
Fraction = Annotated[_Number, Field(ge=0, le=1)]
Activation = Literal["tanh", "relu", "elu", "gelu"]


def _non_empty(v: tuple[int, ...]) -> tuple[int, ...]:
    if not v:
        raise ValueError("must be a non-empty list of positive ints")
    return v


#: hidden layer widths: a non-empty list of positive ints
HiddenSizes = Annotated[tuple[PositiveInt, ...], AfterValidator(_non_empty)]

#: Kept for callers that catch an agent's own parameter errors.
AgentConfigError = ParameterError


class AgentConfig(Params):
    """Base of the per-algorithm hyperparameter blocks (``training.<agent>`` minus the common keys)."""

    PATH: ClassVar[str] = "training.agent"
    FILE: ClassVar[str] = "conf/base/parameters_training.yml"

    @classmethod
    def from_params(cls, params: Any = None, prefix: str | None = None):
        """The block validated, errors naming ``prefix.<key>`` (default ``training.<algorithm>``)."""
        return cls.parse(params, prefix or cls.PATH)

    def check_batch(self, num_envs: int, prefix: str | None = None) -> None:
        """Checks that need the number of env lanes (e.g. minibatch vs rollout size); none by default."""

    def to_dict(self) -> dict[str, Any]:
        return self.to_params()
