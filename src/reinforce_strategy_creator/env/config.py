"""Validated configuration of the trading environment.

`EnvConfig` is a frozen dataclass so that one configuration object can be shared by the
training, evaluation and deployment stages (they all read ``conf/base/parameters_environment.yml``
under the top-level key ``environment``) and stored next to results without anyone mutating it.
`EnvConfig.from_params` is the only way configuration enters from Kedro parameters: it checks
every value and raises `EnvConfigError` (a `ValueError`) naming the full dotted parameter,
e.g. ``environment.positions``, and what to do about it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

REWARDS = ("log_return", "differential_sharpe", "drawdown_penalised")
FILL_PRICES = ("next_open", "next_close")
DEVICES = ("auto", "cpu", "cuda")
PREFIX = "environment"


class EnvConfigError(ValueError):
    """A parameter under ``environment`` is missing, unknown or out of range."""


def _err(name: str, message: str) -> EnvConfigError:
    return EnvConfigError(
        f"{PREFIX}.{name}: {message} (fix it in conf/base/parameters_environment.yml "
        f"or in the parameters you passed)"
    )


@dataclass(frozen=True)
class EnvConfig:
    """Every knob of the trading environment; see docs/environment.md for meaning and units."""

    window: int = 16
    positions: tuple[float, ...] = (0.0, 1.0)
    fill_price: str = "next_close"
    continuous: bool = False
    initial_capital: float = 100_000.0
    commission_bps: float = 2.0
    slippage_bps: float = 3.0
    borrow_bps_per_bar: float = 0.04
    reward: str = "log_return"
    dsr_eta: float = 0.01
    drawdown_lambda: float = 1.0
    episode_length: int | None = 256
    obs_position: bool = True
    obs_unrealised: bool = True
    obs_bars_held: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        # Validation lives here so that direct construction is as safe as from_params.
        object.__setattr__(self, "positions", tuple(float(p) for p in self.positions))
        _validate(self)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> "EnvConfig":
        """Build from the ``environment`` parameter dict (or the whole parameters dict)."""
        if params is None:
            return cls()
        if not isinstance(params, Mapping):
            raise EnvConfigError(
                f"{PREFIX}: expected a mapping of parameters, got {type(params).__name__}"
            )
        if PREFIX in params and isinstance(params[PREFIX], Mapping):
            params = params[PREFIX]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise _err(
                unknown[0],
                f"unknown parameter; allowed parameters are {sorted(known)}",
            )
        kwargs: dict[str, Any] = {}
        for name, value in params.items():
            if name == "positions":
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    raise _err(name, f"must be a list of numbers such as [0, 1], got {value!r}")
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)

    def to_params(self) -> dict[str, Any]:
        """Plain JSON-able dict (positions as a list) that `from_params` accepts back."""
        d = asdict(self)
        d["positions"] = list(self.positions)
        return d

    # ------------------------------------------------------------------ derived values
    @property
    def n_actions(self) -> int:
        return len(self.positions)

    @property
    def position_bounds(self) -> tuple[float, float]:
        return (min(self.positions), max(self.positions))

    @property
    def long_only(self) -> bool:
        return min(self.positions) >= 0.0

    def resolve_device(self) -> str:
        if self.device == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _validate(c: EnvConfig) -> None:
    if not isinstance(c.window, int) or isinstance(c.window, bool) or c.window <= 0:
        raise _err("window", f"must be a positive integer number of bars, got {c.window!r}")
    pos = c.positions
    if len(pos) < 2:
        raise _err("positions", f"needs at least two target positions including 0, got {list(pos)}")
    if any(not math.isfinite(p) for p in pos):
        raise _err("positions", f"must be finite numbers, got {list(pos)}")
    if 0.0 not in pos:
        raise _err("positions", f"must contain 0 (flat) so an agent can always exit, got {list(pos)}")
    if len(set(pos)) != len(pos):
        raise _err("positions", f"contains duplicates {list(pos)}; list each target position once")
    if any(abs(p) > 1.0 for p in pos):
        raise _err(
            "positions",
            f"target positions are fractions of equity and must lie in [-1, 1], got {list(pos)}",
        )
    if c.fill_price not in FILL_PRICES:
        raise _err(
            "fill_price",
            f"unknown fill price {c.fill_price!r}; choose one of {list(FILL_PRICES)} (next_close unless "
            "every bar's Open is a real traded price: see data_quality_report.json, stale_open)",
        )
    if not isinstance(c.continuous, bool):
        raise _err("continuous", f"must be true or false, got {c.continuous!r}")
    if not _is_number(c.initial_capital) or not math.isfinite(c.initial_capital) or c.initial_capital <= 0:
        raise _err("initial_capital", f"must be a positive amount of cash, got {c.initial_capital!r}")
    for name in ("commission_bps", "slippage_bps", "borrow_bps_per_bar"):
        v = getattr(c, name)
        if not _is_number(v) or not math.isfinite(v) or v < 0:
            raise _err(name, f"costs must be finite and >= 0 basis points, got {v!r}")
        if v >= 1e4:
            raise _err(name, f"{v} bps is 100% or more of the notional; use basis points (1 bp = 0.01%)")
    if c.reward not in REWARDS:
        raise _err("reward", f"unknown reward {c.reward!r}; choose one of {list(REWARDS)}")
    if not _is_number(c.dsr_eta) or not (0.0 < c.dsr_eta < 1.0):
        raise _err("dsr_eta", f"the differential Sharpe decay must lie in (0, 1), got {c.dsr_eta!r}")
    if not _is_number(c.drawdown_lambda) or not math.isfinite(c.drawdown_lambda) or c.drawdown_lambda < 0:
        raise _err("drawdown_lambda", f"must be a finite number >= 0, got {c.drawdown_lambda!r}")
    if c.episode_length is not None and (
        not isinstance(c.episode_length, int) or isinstance(c.episode_length, bool) or c.episode_length <= 0
    ):
        raise _err(
            "episode_length",
            f"must be a positive integer number of steps, or null for the full period; got {c.episode_length!r}",
        )
    for name in ("obs_position", "obs_unrealised", "obs_bars_held"):
        if not isinstance(getattr(c, name), bool):
            raise _err(name, f"must be true or false, got {getattr(c, name)!r}")
    if c.device not in DEVICES:
        raise _err("device", f"unknown device {c.device!r}; choose one of {list(DEVICES)}")
