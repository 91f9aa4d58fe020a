"""Typed view of the ``deployment:`` parameters (conf/base/parameters_deployment.yml).

Plain dict in, validated objects out, so the library stays usable without Kedro; the CLI
and, later, the deployment pipeline read the dict through Kedro's ``OmegaConfigLoader``.
Relative paths are resolved against the project root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .broker import CostModel, RiskLimits, RiskParameterError
from .drift import DriftThresholds

_KNOWN = {"mode", "registry_path", "account_dir", "initial_capital", "costs", "risk", "drift",
          "broker_adapter", "api_endpoint", "api_key", "api_secret"}
_DRIFT_THRESHOLD_KEYS = {"psi", "ks", "min_samples", "eps"}
_DRIFT_MONITOR_KEYS = {"n_bins", "window", "check_every", "halt_on_drift"}


class DeploymentParameterError(ValueError):
    """A ``deployment.*`` parameter is missing or invalid."""


@dataclass(frozen=True)
class DeploymentParams:
    mode: str
    registry_path: Path
    account_dir: Path
    initial_capital: float
    costs: CostModel
    risk: RiskLimits
    drift: DriftThresholds
    drift_n_bins: int
    drift_window: int
    drift_check_every: int
    halt_on_drift: bool
    raw: Mapping[str, Any]

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, project_root: Path) -> DeploymentParams:
        if not params:
            raise DeploymentParameterError(
                "parameters 'deployment' not found; add conf/base/parameters_deployment.yml "
                "with a top-level 'deployment:' key."
            )
        unknown = sorted(set(params) - _KNOWN)
        if unknown:
            raise DeploymentParameterError(
                f"unknown parameters deployment.{unknown}; allowed: {sorted(_KNOWN)}"
            )
        for key in ("registry_path", "account_dir", "initial_capital"):
            if key not in params:
                raise DeploymentParameterError(f"deployment.{key} is required.")
        drift = dict(params.get("drift") or {})
        bad = sorted(set(drift) - _DRIFT_THRESHOLD_KEYS - _DRIFT_MONITOR_KEYS)
        if bad:
            raise DeploymentParameterError(f"unknown parameters deployment.drift.{bad}")
        try:
            costs = CostModel(**(params.get("costs") or {}))
        except TypeError as exc:
            raise RiskParameterError(f"deployment.costs: {exc}") from exc

        def resolve(p: str) -> Path:
            path = Path(p)
            return path if path.is_absolute() else Path(project_root) / path

        return cls(
            mode=params.get("mode", "paper_trading"),
            registry_path=resolve(params["registry_path"]),
            account_dir=resolve(params["account_dir"]),
            initial_capital=float(params["initial_capital"]),
            costs=costs,
            risk=RiskLimits.from_params(params.get("risk") or {}),
            drift=DriftThresholds(**{k: v for k, v in drift.items() if k in _DRIFT_THRESHOLD_KEYS}),
            drift_n_bins=int(drift.get("n_bins", 10)),
            drift_window=int(drift.get("window", 60)),
            drift_check_every=int(drift.get("check_every", 1)),
            halt_on_drift=bool(drift.get("halt_on_drift", True)),
            raw=params,
        )
