"""``environment``: the trading environment shared by training, evaluation and deployment.

One typed block (:class:`EnvConfig`, a :class:`~..params.base.Params`), validated once per node
and passed down typed: the costs, capital, fill price, observation and account rules every agent,
benchmark and paper account use, for one instrument and for a universe of N >= 1 assets alike.
The single-instrument core (``env/core.py``) trades the discrete ``positions``; the universe core
(``env/portfolio.py``, any N including 1) trades target weights under ``long_only``,
``gross_leverage`` and ``band``. Meaning, units and timing: docs/environment.md.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, field_validator, model_validator

from ..params.base import Flag, Number, ParameterError, Params, PositiveInt
from .execution import ExecutionRules

FillPrice = Literal["next_open", "next_close"]
#: Where an order decided at bar t's close fills (docs/environment.md).
FILL_PRICES: tuple[str, ...] = get_args(FillPrice)
DEFAULT_FILL_PRICE = "next_close"
Granularity = Literal["fractional", "whole"]  # execution.GRANULARITIES

#: Fields only the single-instrument core reads (its discrete or Box action and its account-state
#: observation); the universe core (any N) acts in weights and ignores them.
INSTRUMENT_ONLY_FIELDS = ("positions", "continuous", "obs_position", "obs_unrealised", "obs_bars_held")

#: The most ``gross_leverage`` times the per-trade cost rate (commission + slippage + borrow, with
#: a 1 % margin) may reach: beyond it a rebalance could cost more than half the equity.
MAX_LEVERED_COST = 0.5

#: Kept for callers that catch the environment's own parameter errors.
EnvConfigError = ParameterError


class EnvConfig(Params):
    """Every knob of the trading environment (``conf/base/parameters_environment.yml``)."""

    PATH: ClassVar[str] = "environment"
    FILE: ClassVar[str] = "conf/base/parameters_environment.yml"

    window: PositiveInt = 16
    """Bars of scaled features in each observation (W). The first decision is at bar W−1."""
    positions: tuple[Number, ...] = (0.0, 1.0)
    """Discrete target positions, as fractions of equity in [−1, 1]; must contain 0, no duplicates. `[-1, 0,
    1]` allows shorts."""
    fill_price: FillPrice = DEFAULT_FILL_PRICE
    """Price an order decided after bar t's close fills at: `next_close` (bar t+1's close) or `next_open` (bar
    t+1's open; only where opens are real, see docs/environment.md "Fill price"). Used by training,
    evaluation, benchmarks and paper trading alike."""
    continuous: Flag = False
    """`true`: a Box action in [min(positions), max(positions)] instead of a discrete choice."""
    initial_capital: Number = Field(100_000.0, gt=0)
    """Starting cash of every account: agents, benchmarks, random policies and the paper accounts."""
    commission_bps: Number = Field(2.0, ge=0, lt=1e4)
    """Commission in basis points of traded notional at the fill price — the same for agents, benchmarks and
    paper trading."""
    slippage_bps: Number = Field(3.0, ge=0, lt=1e4)
    """The fill price moves this many bps of the reference price (next close or open) against the trader."""
    borrow_bps_per_bar: Number = Field(0.04, ge=0, lt=1e4)
    """Short borrow cost, bps of short notional per bar (0.04 ≈ 1 %/year on daily bars)."""
    reward: Literal["log_return", "differential_sharpe", "drawdown_penalised"] = "log_return"
    """Training reward: `log_return` | `differential_sharpe` | `drawdown_penalised` (docs/environment.md)."""
    dsr_eta: Number = Field(0.01, gt=0, lt=1)
    """`differential_sharpe` only: decay of the moving moments, in (0, 1)."""
    drawdown_lambda: Number = Field(1.0, ge=0)
    """`drawdown_penalised` only: penalty per unit increase of drawdown, ≥ 0."""
    episode_length: PositiveInt | None = 256
    """Training steps per episode from a random start; `null` = the full period. Evaluation always replays the
    full period."""
    obs_position: Flag = True
    """Add the current position to the observation."""
    obs_unrealised: Flag = True
    """Add the unrealised return of the open position to the observation."""
    obs_bars_held: Flag = True
    """Add the number of bars the position has been held to the observation."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto` (CUDA if available) | `cpu` | `cuda` for the batched trading core."""
    long_only: Flag = True
    """Universe weights (any N, a universe of one included): weights >= 0 and sum <= 1, cash is the rest;
    `false`: shorts under `gross_leverage`. The single-instrument core trades `positions` instead."""
    gross_leverage: Number = Field(1.0, gt=0, le=10)
    """Universe weights: the most sum(|w|) may reach; must be 1 with `long_only`. The single-instrument core's
    bounds are min/max of `positions`."""
    band: Number = Field(0.0, ge=0, lt=1)
    """Universe weights: no-trade band; an asset whose target differs from its current weight by less is not
    traded (0: always trade to the target)."""
    granularity: Granularity = "fractional"
    """Backtest shares: `fractional` (any amount) or `whole` (each resulting holding truncated toward zero).
    A paper account's granularity is its own (`deployment.granularity`, `portfolio.paper.granularity`)."""

    @field_validator("positions")
    @classmethod
    def _positions(cls, pos: tuple[float, ...]) -> tuple[float, ...]:
        pos = tuple(float(p) for p in pos)
        if len(pos) < 2:
            raise ValueError(f"needs at least two target positions including 0, got {list(pos)}")
        if 0.0 not in pos:
            raise ValueError(f"must contain 0 (flat) so an agent can always exit, got {list(pos)}")
        if len(set(pos)) != len(pos):
            raise ValueError(f"contains duplicates {list(pos)}; list each target position once")
        if any(abs(p) > 1.0 for p in pos):
            raise ValueError(
                f"target positions are fractions of equity and must lie in [-1, 1], got {list(pos)}"
            )
        return pos

    @model_validator(mode="after")
    def _account(self) -> EnvConfig:
        if self.long_only and self.gross_leverage != 1.0:
            raise ValueError(
                f"gross_leverage={self.gross_leverage!r} must be 1.0 when long_only is true (weights sum "
                "to <= 1); set long_only: false to allow shorts under gross_leverage, or gross_leverage: 1.0"
            )
        rate = (self.commission_bps + self.slippage_bps + self.borrow_bps_per_bar) / 1e4 * 1.01
        if self.gross_leverage * rate > MAX_LEVERED_COST:
            raise ValueError(
                f"gross_leverage={self.gross_leverage!r} times the cost rates (commission_bps + "
                f"slippage_bps + borrow_bps_per_bar = {rate / 1.01 * 1e4:g} bps) must be <= "
                f"{MAX_LEVERED_COST}; lower gross_leverage or the costs"
            )
        return self

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_params(cls, params: Any) -> EnvConfig:
        """Build from the ``environment`` parameters (or the whole parameters dict)."""
        if isinstance(params, dict) and "environment" in params and isinstance(params["environment"], dict):
            params = params["environment"]
        return cls.parse(params)

    # ------------------------------------------------------------------ derived values
    @property
    def n_actions(self) -> int:
        return len(self.positions)

    @property
    def position_bounds(self) -> tuple[float, float]:
        return (min(self.positions), max(self.positions))

    def universe_params(self) -> dict[str, Any]:
        """The fields a universe account trades under (all but :data:`INSTRUMENT_ONLY_FIELDS`), as
        plain values: what a universe policy bundle records and a paper account checks."""
        return {k: v for k, v in self.to_params().items() if k not in INSTRUMENT_ONLY_FIELDS}

    @property
    def rules(self) -> ExecutionRules:
        """The execution kernel's cost rates and share granularity of this environment."""
        return ExecutionRules.from_config(self, self.granularity)

    def resolve_device(self) -> str:
        if self.device == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device
