"""``portfolio``: the portfolio cycle over a universe of assets (docs/walk_forward.md).

``kedro run --pipelines full_cycle --env portfolio`` (``evaluation.scheme: portfolio``) runs it:
the universe is read and checked per ticker, per-ticker features are built, every fold of the
``walk_forward`` layout trains the ``portfolio.training`` agents on its past, selects on its
validation window and trades its test year (every account is the top-level ``environment``
block's, :class:`~..env.config.EnvConfig`), the stitched test years are judged by the
``evaluation.gate`` (against equal-weight buy-and-hold), and the deployment fold's champion
paper-trades the held-back years. Agents' hyperparameters are the single-asset algorithms'
(``params/agents.py``), validated by the same models.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import InputError
from .agents import AGENT_CONFIGS, LearnerConfig
from .base import Flag, NonNegativeInt, Params, PositiveInt

ALGORITHMS = ("ppo", "a2c", "dqn")


class IndexParams(Params):
    """``portfolio.index``: the index bought and held as one more benchmark (the file is the
    catalog's ``portfolio.raw_index``). The universe itself is ``data_ingestion``'s."""

    PATH: ClassVar[str] = "portfolio.index"
    FILE: ClassVar[str] = "conf/base/parameters_portfolio.yml"

    filepath: str = "data/01_raw/sp500_index_close_1990_2022.csv"
    """The index file (`portfolio.raw_index`): a date column and the index `column`."""
    column: str | None = None
    """Column of `portfolio.raw_index` holding the index close (e.g. `SP500`): bought and held as one
    more benchmark through the same costs and capital; `null`: no index benchmark."""


class PortfolioTrainingParams(Params):
    """``portfolio.training``: seeds, lanes and evaluation cadence shared by the portfolio agents,
    and one block per agent under `agents` (its `algorithm` and hyperparameters)."""

    PATH: ClassVar[str] = "portfolio.training"
    FILE: ClassVar[str] = "conf/base/parameters_portfolio.yml"

    seeds: tuple[NonNegativeInt, ...] = (0, 1)
    """One policy per seed and agent in every fold."""
    num_envs: PositiveInt = 32
    """Parallel accounts (lanes) of the batched portfolio training env."""
    eval_every: PositiveInt = 4
    """Updates between validation Sharpe evaluations (always after the last)."""
    patience: PositiveInt | None = 4
    """Stop after this many evaluations without a new best; `null` = never."""
    population: Flag = True
    """Train an agent's seeds as one population (docs/agents.md)."""
    num_threads: PositiveInt | None = 1
    """Torch CPU threads while training; `null` = torch's default."""
    progress: Flag = False
    """Progress bar with steps/s while training."""
    agents: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"ppo": {"algorithm": "ppo"}, "a2c": {"algorithm": "a2c"}}
    )
    """Agent name -> its block: `algorithm` (ppo | a2c | dqn) and that algorithm's hyperparameters
    (docs/agents.md: the algorithm's block, plus the portfolio policy's fields for PPO)."""

    def learners(self) -> dict[str, LearnerConfig]:
        """Agent name -> its algorithm's typed block (``params.agents``)."""
        return {name: _learner(name, block) for name, block in self.agents.items()}

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must be a non-empty list of distinct non-negative ints")
        return v

    @field_validator("agents")
    @classmethod
    def _agents(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not v:
            raise ValueError("needs at least one agent, e.g. {ppo: {algorithm: ppo}}")
        for name, block in v.items():
            algo = (block or {}).get("algorithm")
            if algo not in ALGORITHMS:
                raise ValueError(f"agent {name!r}: algorithm={algo!r}; choose one of {list(ALGORITHMS)}")
            try:
                _learner(name, block)
            except InputError as exc:
                raise ValueError(str(exc).split(". Fix it in ")[0]) from None
        return v


def _learner(name: str, block: dict[str, Any]) -> LearnerConfig:
    """``portfolio.training.agents.<name>`` as its algorithm's typed block (``params.agents``)."""
    return AGENT_CONFIGS[block["algorithm"]].from_params(
        {k: x for k, x in block.items() if k != "algorithm"}, f"portfolio.training.agents.{name}"
    )


RunName = Literal["equal_weight", "buy_and_hold", "index", "min_variance", "max_sharpe", "random"]


class PortfolioBenchmarkParams(Params):
    """Portfolio benchmarks, replayed with the agents' `environment` (costs and capital are never
    set here)."""

    PATH: ClassVar[str] = "portfolio.benchmarks"
    FILE: ClassVar[str] = "conf/base/parameters_portfolio.yml"

    names: tuple[RunName, ...] = (
        "equal_weight",
        "buy_and_hold",
        "index",
        "min_variance",
        "max_sharpe",
        "random",
    )
    """Runs to replay; `buy_and_hold` (equal weight bought once and held) is required: evaluation and the
    gate compare every candidate with it. `index` runs only when an index close series is given."""
    rebalance: Literal["weekly", "monthly", "quarterly"] = "monthly"
    """When `equal_weight`, `min_variance`, `max_sharpe` and `random` rebalance: the first decision bar of
    each calendar period (and the first decision); in between they hold."""
    lookback: Annotated[PositiveInt, Field(ge=2)] = 252
    """Trailing simple returns (bars up to the decision bar) that `min_variance` and `max_sharpe` fit on."""
    min_history: Annotated[PositiveInt, Field(ge=2)] = 63
    """Fewest trailing returns a fit needs; with fewer, the lane sets equal weight at that rebalance
    (counted as `warmup_equal_weight`)."""
    n_random_seeds: Annotated[PositiveInt, Field(ge=100)] = 100
    """Random lanes (Dirichlet(1) weights redrawn at each rebalance), one replay with one lane per seed."""
    random_seed: NonNegativeInt = 0
    """Lane i of the random run is seeded with `random_seed + i`."""

    @model_validator(mode="after")
    def _check(self) -> PortfolioBenchmarkParams:
        if "buy_and_hold" not in self.names:
            raise ValueError(
                "names must include buy_and_hold: evaluation and the walk-forward gate compare every "
                "candidate with the run named buy_and_hold"
            )
        dup = sorted({n for n in self.names if self.names.count(n) > 1})
        if dup:
            raise ValueError(f"names lists {dup} more than once")
        if self.min_history > self.lookback:
            raise ValueError(f"min_history ({self.min_history}) must be <= lookback ({self.lookback})")
        return self


class PortfolioPaperParams(Params):
    """``portfolio.paper``: the paper account the deployment fold's champion trades the held-back
    years with (docs/paper_trading.md)."""

    PATH: ClassVar[str] = "portfolio.paper"
    FILE: ClassVar[str] = "conf/base/parameters_portfolio.yml"

    granularity: Literal["whole", "fractional"] = "whole"
    """`whole`: positions in whole shares; `fractional`: any amount (reproduces the backtest)."""
    max_weight: float = Field(1.0, gt=0, le=1)
    """Largest weight one asset may be given (targets above it are cut to it)."""
    max_drawdown: float = Field(0.5, gt=0, le=1)
    """The account halts (goes to cash and stops trading) past this fall from its peak."""


class PortfolioParams(Params):
    """``portfolio``: the portfolio cycle (universe, account, agents, benchmarks, paper)."""

    PATH: ClassVar[str] = "portfolio"
    FILE: ClassVar[str] = "conf/base/parameters_portfolio.yml"

    MOVED: ClassVar[dict[str, str]] = {
        "environment": "the account (window, costs, long_only, gross_leverage, band, ...) is the top-level "
        "`environment` block (conf/base/parameters_environment.yml; the embedded universe's values are "
        "conf/portfolio/parameters.yml); move these keys there"
    }

    index: IndexParams = IndexParams()
    """The index benchmark (the tickers are `data_ingestion`'s universe)."""
    training: PortfolioTrainingParams = PortfolioTrainingParams()
    """The agents and their shared training settings."""
    benchmarks: PortfolioBenchmarkParams = PortfolioBenchmarkParams()
    """The benchmarks replayed next to the agents (docs/metrics.md)."""
    paper: PortfolioPaperParams = PortfolioPaperParams()
    """The paper account."""
