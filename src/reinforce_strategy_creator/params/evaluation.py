"""``evaluation``: benchmarks, the gate's thresholds and champion selection (docs/evaluation.md).

Costs and capital are never set here: agents and benchmarks all use ``environment``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from .base import Flag, Number, Params, PositiveInt

RANK_METRICS = ("sharpe", "sortino", "calmar", "total_return", "annual_return")


class BenchmarkParams(Params):
    """Rule-based and random benchmarks, replayed with the agents' costs and capital."""

    sma_fast: PositiveInt = 20
    """SMA crossover: long while SMA(fast) > SMA(slow) of closes."""
    sma_slow: Annotated[PositiveInt, Field(ge=2)] = 100
    """SMA crossover: the slow average's length, > `sma_fast`."""
    momentum_lookback: PositiveInt = 60
    """Time-series momentum: long while close_t / close_{t−lookback} > 1."""
    long_short: Flag = False
    """`true`: SMA and momentum benchmarks go short (−1) instead of flat; needs −1 in `environment.positions`.
    """
    random_seeds: Annotated[PositiveInt, Field(ge=100)] = 100
    """Random policy: seeds 0 … N−1 (≥ 100), replayed in one batch; each agent's percentile within their
    Sharpe distribution is reported."""
    random_switch_prob: Annotated[Number, Field(gt=0, le=1)] = 0.05
    """Per-bar chance that a random policy redraws its position (0.05 ≈ 20-bar holds; 1 = a new draw every
    bar)."""

    @model_validator(mode="after")
    def _fast_below_slow(self) -> BenchmarkParams:
        if self.sma_fast >= self.sma_slow:
            raise ValueError(f"sma_fast ({self.sma_fast}) must be smaller than sma_slow ({self.sma_slow})")
        return self


class GateParams(Params):
    """The rules a champion's single replay of the test window must pass to be promotable."""

    PATH: ClassVar[str] = "evaluation.gate"
    FILE: ClassVar[str] = "conf/base/parameters_evaluation.yml"
    KEYS: ClassVar[tuple[str, ...]] = ("min_sharpe", "max_drawdown", "must_beat_buy_and_hold", "min_psr")

    min_sharpe: Number = 0.5
    """Annualised Sharpe of the champion's test replay ≥ this."""
    max_drawdown: Annotated[Number, Field(gt=0, le=1)] = 0.25
    """Worst fall from a peak at most this fraction (0.25 = 25 %)."""
    must_beat_buy_and_hold: Flag = True
    """Sharpe strictly above buy-and-hold's on the same bars and costs."""
    min_psr: Annotated[Number, Field(ge=0, le=1)] = 0.95
    """Probabilistic Sharpe ratio P(true Sharpe > buy-and-hold's), deflated for the configurations already
    gated on the same test window, ≥ this (docs/metrics.md, "Gate")."""

    @classmethod
    def from_params(cls, params, prefix: str = "evaluation.gate") -> GateParams:
        return cls.parse(params, prefix)

    def to_dict(self) -> dict:
        return self.to_params()


class EvaluationParams(Params):
    """``evaluation``: benchmarks, gate, champion selection and report settings."""

    PATH: ClassVar[str] = "evaluation"
    FILE: ClassVar[str] = "conf/base/parameters_evaluation.yml"
    RANK_METRICS: ClassVar[tuple[str, ...]] = RANK_METRICS

    benchmarks: BenchmarkParams = BenchmarkParams()
    gate: GateParams = GateParams()
    rank_metric: Literal["sharpe", "sortino", "calmar", "total_return", "annual_return"] = "sharpe"
    """The validation metric (never test) the champion is selected on."""
    selection: Literal["best_agent_ensemble", "best_agent_best_seed", "best_candidate"] = (
        "best_agent_ensemble"
    )
    """How the champion is chosen on validation: `best_agent_ensemble` = the agent whose seeds score best on
    average (fewest ruined seeds first), then its seed ensemble; `best_agent_best_seed` = that agent's best
    seed; `best_candidate` = the single best agent × seed or ensemble (noisiest: the winner's curse).
    docs/metrics.md, "Selection"."""
    ensembles: Flag = True
    """Replay each agent's seed ensemble (mean action probabilities or Q-values of its seeds) on validation
    and test as one more candidate (docs/agents.md, "Seed ensembles")."""
    rolling_window: Annotated[PositiveInt, Field(ge=2)] = 63
    """Bars in the rolling-Sharpe figure (≈ one quarter of daily bars)."""
    scheme: Literal["walk_forward", "single_split", "portfolio"] = "walk_forward"
    """What `full_cycle` runs between ingestion and deployment: `walk_forward` = the walk_forward
    stage (each fold trains, selects on its validation window and trades its test year; the gate
    decides on the stitched test years, and the deployment fold's champion is registered and
    paper-traded); `single_split` = feature_engineering, training and evaluation on one
    chronological split (the gate decides on its test window). docs/walk_forward.md; `portfolio` =
the portfolio stage on data_ingestion's universe (`--env portfolio`, docs/walk_forward.md)."""

    @model_validator(mode="after")
    def _ensemble_selection_needs_ensembles(self) -> EvaluationParams:
        if self.selection == "best_agent_ensemble" and not self.ensembles:
            raise ValueError(
                "selection: best_agent_ensemble needs ensembles: true; set ensembles: true or choose "
                "selection: best_agent_best_seed"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _no_costs_here(cls, data):
        costs = ("initial_capital", "commission_bps", "slippage_bps", "borrow_bps_per_bar", "fill_price")
        found = [k for k in costs if isinstance(data, dict) and k in data]
        if found:
            raise ValueError(
                f"{found[0]} is not an evaluation parameter: costs, capital and fills are never set "
                "here, agents and benchmarks all use params:environment (parameters_environment.yml)"
            )
        return data

    @classmethod
    def from_params(cls, params) -> EvaluationParams:
        return cls.parse(params)

    def to_dict(self) -> dict:
        return self.to_params()
