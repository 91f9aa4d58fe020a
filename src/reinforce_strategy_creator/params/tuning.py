"""``tuning``: a hyperparameter search over one agent's block, judged on validation windows only
(docs/hyperparameter_search.md).

One typed block: the agent, the number of trials, the study's name and storage, the sampler and
pruner, the walk-forward folds and budget a trial trains with, the heartbeat that fails a
killed worker's trial, and the search space (one typed range per hyperparameter of
``training.<agent>``). Whether a search-space name is a hyperparameter of the agent is checked
against the agent's own config class by :func:`check_search_space` (it needs ``training``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .agents import AGENT_CONFIGS
from .base import Flag, NonNegativeInt, Number, ParameterError, Params, PositiveInt

#: block keys of ``training.<agent>`` besides the algorithm's own config that a search may vary
TUNABLE_COMMON = ("num_envs", "eval_every", "patience")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SearchRange(Params):
    """One hyperparameter's range: ``float`` (``log`` for a log-uniform scale), ``int`` or
    ``categorical`` (``choices``)."""

    PATH: ClassVar[str] = "tuning.search_space.<name>"
    FILE: ClassVar[str] = "conf/base/parameters_tuning.yml"

    type: Literal["float", "int", "categorical"]
    """`float` | `int` | `categorical`."""
    low: Number | None = None
    """Lower bound (float and int), inclusive."""
    high: Number | None = None
    """Upper bound (float and int), inclusive; must be above `low`."""
    log: Flag = False
    """Sample on a log scale (needs `low` > 0)."""
    step: Number | None = Field(default=None, gt=0)
    """Grid step (int: default 1; float: null = continuous; not with `log`)."""
    choices: tuple[Any, ...] | None = None
    """The values of a `categorical` range (numbers, text, true/false or lists)."""

    @model_validator(mode="after")
    def _range(self) -> SearchRange:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical range needs a non-empty `choices` list")
            if self.low is not None or self.high is not None:
                raise ValueError("a categorical range takes `choices`, not `low`/`high`")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} range takes `low`/`high`, not `choices`")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} range needs both `low` and `high`")
        if not self.low < self.high:
            raise ValueError(
                f"empty or inverted range: low {self.low} is not below high {self.high}; "
                "a value that should stay fixed belongs in training.<agent>, not in the search space"
            )
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"an int range needs whole-number bounds, got {self.low}..{self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("`step` cannot be combined with `log`")
        return self


def _default_space() -> dict[str, SearchRange]:
    return {
        "learning_rate": SearchRange(type="float", low=1e-4, high=3e-3, log=True),
        "gamma": SearchRange(type="float", low=0.8, high=0.99),
        "gae_lambda": SearchRange(type="float", low=0.8, high=1.0),
        "ent_coef": SearchRange(type="float", low=0.0, high=0.05),
    }


class TuningParams(Params):
    """``tuning``: an Optuna study over ``training.<agent>``, scored on walk-forward validation
    windows (never a test window or the paper period)."""

    PATH: ClassVar[str] = "tuning"
    FILE: ClassVar[str] = "conf/base/parameters_tuning.yml"

    agent: str = "ppo"
    """The `training.<agent>` block the search varies (torch backend)."""
    n_trials: PositiveInt = 20
    """Trials finished (complete + pruned) in the study in total; a rerun resumes an unfinished study and
    adds nothing to a finished one."""
    study_name: str = "ppo_walk_forward"
    """The study's name in its storage (letters, digits, `_ . -`); also names the default journal file."""
    storage: str | None = None
    """null = the journal file `data/06_models/tuning/<study_name>.journal` (workers on one machine);
    `postgresql://user@host:5432/db` shares the study across machines; `sqlite:///path.db` also works
    on one machine; any other text is a journal file path."""
    sampler: Literal["tpe", "random"] = "tpe"
    """Optuna sampler: `tpe` (TPESampler) | `random`."""
    seed: NonNegativeInt | None = 0
    """Sampler seed (worker k uses seed + k); null = unseeded."""
    pruner: Literal["median", "none"] = "median"
    """`median`: stop a trial whose running mean validation Sharpe after a fold is below the median of
    earlier trials at that fold; `none`: every trial trains every fold."""
    pruner_startup_trials: NonNegativeInt = 5
    """Trials that finish before the median pruner may prune anything."""
    folds: PositiveInt | None = None
    """Use the last N walk-forward folds (their training and validation windows); null = all of
    `walk_forward.folds`."""
    total_steps: PositiveInt | None = None
    """Env steps per seed in a trial (a smaller budget for the search); null = the agent's own."""
    seeds: tuple[NonNegativeInt, ...] | None = None
    """Training seeds of a trial; null = the agent's own (`training.common.seeds` or its override)."""
    heartbeat_interval: PositiveInt = 60
    """Seconds between a running trial's heartbeats (RDB storages: postgresql, sqlite)."""
    grace_period: PositiveInt | None = None
    """Seconds without a heartbeat after which a trial is failed and retried; null = 2 x
    heartbeat_interval."""
    max_retry: NonNegativeInt = 2
    """Times a trial whose worker died (stale heartbeat) is retried with the same parameters."""
    search_space: dict[str, SearchRange] = Field(default_factory=_default_space)
    """Per hyperparameter of `training.<agent>`: `{type: float|int|categorical, low, high, log, step,
    choices}`."""

    @field_validator("study_name")
    @classmethod
    def _study_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be letters, digits, '_', '.' or '-' (it names a file), starting with one")
        return v

    @field_validator("search_space")
    @classmethod
    def _space(cls, v: dict[str, SearchRange]) -> dict[str, SearchRange]:
        if not v:
            raise ValueError("is empty; name at least one hyperparameter of training.<agent> to search")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError("must be a non-empty list of distinct seeds, or null")
        return v

    def storage_url(self, root: str = ".") -> str:
        """The storage as written, or the default journal file's path under ``root``."""
        if self.storage is not None:
            return self.storage
        return f"{root.rstrip('/')}/data/06_models/tuning/{self.study_name}.journal"


def check_search_space(tuning: TuningParams, training: Mapping[str, Any]) -> None:
    """Every search-space name is a hyperparameter of ``training.<agent>``: a field of the agent's
    algorithm config class, or one of :data:`TUNABLE_COMMON`. Raises :class:`ParameterError`
    naming the first bad name, before any training."""
    agents = {k: v for k, v in dict(training or {}).items() if k != "common"}
    if tuning.agent not in agents:
        raise ParameterError(
            f"tuning.agent: {tuning.agent!r} is not an agent block of training; the agents are "
            f"{sorted(agents)}. Fix it in {TuningParams.FILE} or with --params tuning.agent=..."
        )
    block = agents[tuning.agent] if isinstance(agents[tuning.agent], Mapping) else {}
    if block.get("backend", "torch") != "torch":
        raise ParameterError(
            f"tuning.agent: training.{tuning.agent} uses backend {block.get('backend')!r}; the search "
            "supports torch-backend agents only. Tune a torch agent."
        )
    algorithm = block.get("algorithm", tuning.agent)
    if algorithm not in AGENT_CONFIGS:
        raise ParameterError(
            f"training.{tuning.agent}.algorithm: {algorithm!r} is not a known algorithm "
            f"({sorted(AGENT_CONFIGS)})."
        )
    allowed = sorted({*AGENT_CONFIGS[algorithm].model_fields, *TUNABLE_COMMON})
    for name in tuning.search_space:
        if name not in allowed:
            raise ParameterError(
                f"tuning.search_space.{name}: not a hyperparameter of training.{tuning.agent} "
                f"(algorithm {algorithm}); choose from {allowed}. Fix it in {TuningParams.FILE}."
            )
