"""``portfolio``: the portfolio cycle over a universe of assets (docs/portfolio.md).

``kedro run --pipelines full_cycle --env portfolio`` (``evaluation.scheme: portfolio``) runs it:
the universe is read and checked per ticker, per-ticker features are built, every fold of the
``walk_forward`` layout trains the ``portfolio.training`` agents on its past, selects on its
validation year and trades its test year, the stitched test years are judged by the
``evaluation.gate`` (against equal-weight buy-and-hold), and the deployment fold's champion
paper-trades the held-back years. Agents' hyperparameters are the single-asset algorithms'
(``agents/<algo>.py``), validated by the same models.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..portfolio.benchmarks import PortfolioBenchmarkParams
from .base import Flag, NonNegativeInt, Params, PositiveInt

ALGORITHMS = ("ppo", "a2c", "dqn")


class UniverseParams(Params):
    """``portfolio.universe``: where the tickers come from (the file itself is the catalog's
    ``portfolio.raw_universe``; the index file, optional, ``portfolio.raw_index``)."""

    PATH: ClassVar[str] = "portfolio.universe"
    FILE: ClassVar[str] = "conf/base/parameters_portfolio.yml"

    filepath: str = "data/01_raw/sp500_20_stocks_close_1990_2022.csv"
    """The universe file (read by the catalog's `portfolio.raw_universe`; `--params
    portfolio.universe.filepath=...` points it at your own)."""
    index_filepath: str = "data/01_raw/sp500_index_close_1990_2022.csv"
    """The index file (`portfolio.raw_index`): a date column and the `index_column`."""
    format: Literal["wide", "long", "yfinance"] = "wide"
    """`wide`: a date column and one close column per ticker; `long`: one row per ticker and date
    (a Ticker/Symbol column, OHLCV columns); `yfinance`: download `tickers` (optional extra)."""
    tickers: tuple[str, ...] | None = None
    """Tickers to keep, in this order (`null`: every ticker in the file); required for `yfinance`."""
    index_column: str | None = None
    """Column of `portfolio.raw_index` holding the index close (e.g. `SP500`): bought and held as one
    more benchmark through the same costs and capital; `null`: no index benchmark."""
    min_rows: PositiveInt = 250
    """A ticker with fewer bars is an error naming it (drop it with `tickers`)."""

    @model_validator(mode="after")
    def _yfinance_needs_tickers(self) -> UniverseParams:
        if self.format == "yfinance" and not self.tickers:
            raise ValueError("format 'yfinance' needs `tickers` (the symbols to download)")
        return self


class PortfolioEnvParams(Params):
    """``portfolio.environment``: the portfolio account every agent, benchmark and the paper account
    share (docs/portfolio_env.md)."""

    PATH: ClassVar[str] = "portfolio.environment"
    FILE: ClassVar[str] = "conf/base/parameters_portfolio.yml"

    window: PositiveInt = 8
    """Bars of per-asset features in each observation."""
    episode_length: PositiveInt | None = 252
    """Training steps per episode from a random start; `null` = the whole training window."""
    initial_capital: float = Field(100_000.0, gt=0)
    """Starting cash of every account (agents, benchmarks, paper)."""
    commission_bps: float = Field(1.0, ge=0, lt=1000)
    """Commission, basis points of traded notional, per asset per trade."""
    slippage_bps: float = Field(2.0, ge=0, lt=1000)
    """Fills move this many basis points against the trader, per asset per trade."""
    borrow_bps_per_bar: float = Field(0.0, ge=0, lt=1000)
    """Basis points of short notional per bar (long/short only)."""
    long_only: Flag = True
    """Weights >= 0 and sum <= 1 (cash is the rest); `false`: shorts under `gross_leverage`."""
    gross_leverage: float = Field(1.0, gt=0, le=10)
    """The most sum(|w|) may reach (must be 1 with `long_only`)."""
    band: float = Field(0.0, ge=0, lt=1)
    """No-trade band: an asset whose target differs from its current weight by less is not traded."""

    def to_config(self, device: str = "cpu"):
        from ..env.portfolio import PortfolioConfig

        return PortfolioConfig(**self.to_params(), device=device)

    @model_validator(mode="after")
    def _valid_config(self) -> PortfolioEnvParams:
        from ..env.portfolio import PortfolioInputError

        try:
            self.to_config()
        except PortfolioInputError as exc:
            raise ValueError(str(exc).replace("portfolio parameter ", "")) from None
        return self


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
    """Train an agent's seeds as one population (docs/portfolio_agents.md)."""
    num_threads: PositiveInt | None = 1
    """Torch CPU threads while training; `null` = torch's default."""
    progress: Flag = False
    """Progress bar with steps/s while training."""
    agents: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"ppo": {"algorithm": "ppo"}, "a2c": {"algorithm": "a2c"}}
    )
    """Agent name -> its block: `algorithm` (ppo | a2c | dqn) and that algorithm's hyperparameters
    (the single-asset ones of docs/agents.md plus the portfolio policy's, docs/portfolio_agents.md)."""

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
            from ..errors import InputError
            from ..portfolio.training import PORTFOLIO_ALGORITHMS

            try:
                PORTFOLIO_ALGORITHMS[algo][0].from_params(
                    {k: x for k, x in block.items() if k != "algorithm"}, f"portfolio.training.agents.{name}"
                )
            except InputError as exc:
                raise ValueError(str(exc).split(". Fix it in ")[0]) from None
        return v


class PortfolioPaperParams(Params):
    """``portfolio.paper``: the paper account the deployment fold's champion trades the held-back
    years with (docs/portfolio_paper_trading.md)."""

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

    universe: UniverseParams = UniverseParams()
    """Where the tickers come from."""
    environment: PortfolioEnvParams = PortfolioEnvParams()
    """The account agents, benchmarks and the paper account share."""
    training: PortfolioTrainingParams = PortfolioTrainingParams()
    """The agents and their shared training settings."""
    benchmarks: PortfolioBenchmarkParams = PortfolioBenchmarkParams()
    """The benchmarks replayed next to the agents (docs/portfolio_benchmarks.md)."""
    paper: PortfolioPaperParams = PortfolioPaperParams()
    """The paper account."""
