"""``training``: the settings shared by every agent, and one block per agent (docs/training.md).

``training.common`` holds what every agent shares (seeds, budget, lanes, evaluation cadence,
device); each other key of ``training`` is one agent, named by its key (``training.ppo``,
``training.ppo_fast``, ...), whose block names its ``algorithm`` and ``backend``, may override
any common key, and holds that algorithm's hyperparameters (its block in :mod:`.agents`:
``PPOConfig`` ...). Adding an agent is adding a block: the pipelines, the catalog
(dataset factories ``training.{agent}.*``) and evaluation pick it up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from .agents import AGENT_CONFIGS, Sb3Config
from .base import Flag, NonNegativeInt, ParameterError, Params, PositiveInt

BACKENDS = ("torch", "sb3")
RESERVED_AGENT_NAMES = ("common",)


class TrainingCommon(Params):
    """Settings shared by all agents (``training.common``); an agent block may override any of them."""

    PATH: ClassVar[str] = "training.common"
    FILE: ClassVar[str] = "conf/base/parameters_training.yml"

    seeds: tuple[NonNegativeInt, ...] = (0, 1, 2)
    """One policy per seed (≥ 2 so evaluation can report cross-seed spread)."""
    total_steps: PositiveInt = 200_000
    """Env transitions per seed (all lanes); an agent's `total_steps` wins."""
    num_envs: PositiveInt = 64
    """Parallel accounts (lanes) of the batched training env."""
    eval_every: PositiveInt = 5
    """Updates between validation Sharpe evaluations (always after the last)."""
    patience: PositiveInt | None = 8
    """Stop after this many evaluations without a new best; `null` = never."""
    device: str = "auto"
    """`auto` | `cpu` | `cuda` | `cuda:N` for the agents' networks."""
    num_threads: PositiveInt | None = None
    """Torch CPU threads during training; `null` = torch's default."""
    population: Flag = True
    """Train an own (`backend: torch`) agent's seeds as one population: one batched network and env
    for all seeds, each seed with its own env stream, optimiser state, early stopping and best
    checkpoint (docs/populations.md). `false`: one seed after the other."""
    progress: Flag = True
    """Progress bar with steps/s and the latest validation Sharpe (a line every 15 s when not on a terminal).
    """

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("must be a non-empty list of non-negative ints")
        if len(set(v)) != len(v):
            raise ValueError(f"has duplicate seeds {list(v)}; each seed must appear once")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda") and not v.startswith("cuda:"):
            raise ValueError("must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if v.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"{v!r} but CUDA is not available on this machine; use 'auto' or 'cpu'")
        return v


COMMON_KEYS = tuple(TrainingCommon.model_fields)


@dataclass(frozen=True)
class AgentPlan:
    """One agent block, fully validated: its name, algorithm, backend, the common settings with
    its overrides, and the algorithm's hyperparameters (``config``)."""

    name: str
    algorithm: str
    backend: Literal["torch", "sb3"]
    settings: TrainingCommon
    config: Any  # params.agents: the algorithm's <Algo>Config, or Sb3Config
    overrides: tuple[str, ...] = ()

    def to_params(self) -> dict[str, Any]:
        """The block as it would be written in parameters_training.yml."""
        own = self.config.to_params() if hasattr(self.config, "to_params") else dict(self.config.to_dict())
        out = {"algorithm": self.algorithm, "backend": self.backend, **own}
        out.update({k: self.settings.to_params()[k] for k in self.overrides})
        return out


def plan_agent(
    common: TrainingCommon | Mapping[str, Any] | None,
    block: Mapping[str, Any],
    name: str,
    path: str = "training",
) -> AgentPlan:
    """Validate one ``training.<name>`` block against ``training.common``, naming any bad key."""
    where = f"{path}.{name}"
    if not isinstance(block, Mapping):
        raise ParameterError(
            f"{where}: expected a mapping with at least `algorithm`, got {type(block).__name__}. "
            "Fix it in conf/base/parameters_training.yml."
        )
    common = TrainingCommon.parse(common, f"{path}.common")
    block = dict(block)
    backend = block.pop("backend", "torch")
    if backend not in BACKENDS:
        raise ParameterError(
            f"{where}.backend: {backend!r} is not a known backend; choose one of {list(BACKENDS)}. "
            "Fix it in conf/base/parameters_training.yml."
        )
    algorithm = block.pop("algorithm", name)
    if backend == "torch" and algorithm not in AGENT_CONFIGS:
        raise ParameterError(
            f"{where}.algorithm: {algorithm!r} is not a known algorithm; choose one of "
            f"{sorted(AGENT_CONFIGS)} (every agent block names its algorithm). "
            "Fix it in conf/base/parameters_training.yml."
        )
    overrides = tuple(k for k in COMMON_KEYS if k in block)
    settings = TrainingCommon.parse({**common.to_params(), **{k: block[k] for k in overrides}}, where)
    hyper = {k: v for k, v in block.items() if k not in COMMON_KEYS}
    hyper.setdefault("total_steps", settings.total_steps)
    if backend == "sb3":
        config = Sb3Config.from_params(algorithm, hyper, where, settings.num_envs)
    else:
        config = AGENT_CONFIGS[algorithm].from_params(hyper, prefix=where)
        config.check_batch(settings.num_envs, where)
    return AgentPlan(name, str(algorithm), backend, settings, config, overrides)


class TrainingParams(Params):
    """``training``: ``common`` plus one block per agent (any other key)."""

    PATH: ClassVar[str] = "training"
    FILE: ClassVar[str] = "conf/base/parameters_training.yml"

    common: TrainingCommon = TrainingCommon()
    agents: dict[str, Any] = {}
    """Agent name -> :class:`AgentPlan` (the agent blocks, in the order they are written)."""

    @classmethod
    def parse(cls, raw: Any, path: str | None = None) -> TrainingParams:
        if isinstance(raw, cls):
            return raw
        path = cls.PATH if path is None else path
        if not isinstance(raw, Mapping):
            raise ParameterError(
                f"{path}: expected a mapping of agent blocks, got {type(raw).__name__}. Fix it in {cls.FILE}."
            )
        raw = dict(raw)
        common = TrainingCommon.parse(raw.pop("common", None), f"{path}.common")
        if not raw:
            raise ParameterError(
                f"{path}: no agent block; add at least one (e.g. `ppo: {{algorithm: ppo}}`) to {cls.FILE}."
            )
        plans = {str(name): plan_agent(common, block, str(name), path) for name, block in raw.items()}
        obj = cls.model_construct(common=common, agents=plans)
        obj._set_paths(path)
        return obj

    def plan(self, name: str) -> AgentPlan:
        if name not in self.agents:
            raise ParameterError(
                f"{self.path}.{name}: no such agent block; the agents are {sorted(self.agents)}."
            )
        return self.agents[name]

    @property
    def names(self) -> list[str]:
        return list(self.agents)

    def learners(self) -> dict[str, Any]:
        """Agent name -> its algorithm's typed block (``params.agents``)."""
        return {name: plan.config for name, plan in self.agents.items()}

    def to_params(self) -> dict[str, Any]:
        return {"common": self.common.to_params(), **{n: p.to_params() for n, p in self.agents.items()}}
