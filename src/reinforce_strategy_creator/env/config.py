"""``environment``: the trading environment shared by training, evaluation and deployment.

One typed block (:class:`EnvConfig`, a :class:`~..params.base.Params`), validated once per run:
the costs, capital, fill price and observation every agent, benchmark and paper account use.
Meaning, units and timing: docs/environment.md.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, field_validator

from ..params.base import Flag, Number, ParameterError, Params, PositiveInt

FillPrice = Literal["next_open", "next_close"]
#: Where an order decided at bar t's close fills (docs/environment.md).
FILL_PRICES: tuple[str, ...] = get_args(FillPrice)
DEFAULT_FILL_PRICE = "next_close"

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

    def resolve_device(self) -> str:
        if self.device == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device
