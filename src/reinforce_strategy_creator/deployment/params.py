"""Typed view of the ``deployment:`` parameters (conf/base/parameters_deployment.yml).

Plain dict in, validated objects out, so the library stays usable without Kedro; the CLI
and the deployment pipeline read the dicts through Kedro's config loader.

Single sources of truth: costs and initial capital come from ``environment:`` (the values
the agents were trained and evaluated with; copies here are refused), and the registry file
and account folders are the ``filepath`` of the catalog entries ``deployment.model_registry``,
``deployment.account`` and ``deployment.shadow_account`` (conf/base/catalog_deployment.yml),
which the CLI reads too.
Relative paths are resolved against the project root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .broker import CostModel, RiskLimits
from .drift import DriftThresholds

_KNOWN = {"mode", "auto_promote", "require_production_model", "paper_start", "feed", "risk", "drift", "broker_adapter",
          "api_endpoint", "api_key", "api_secret"}
_MOVED = {
    "costs": "costs come from environment.commission_bps / slippage_bps / borrow_bps_per_bar",
    "initial_capital": "the initial capital is environment.initial_capital",
    "registry_path": "the registry file is the filepath of deployment.model_registry in "
                     "conf/base/catalog_deployment.yml",
    "account_dir": "the account folder is the filepath of deployment.account in "
                   "conf/base/catalog_deployment.yml",
    "shadow_account_dir": "the shadow account folder is the filepath of deployment.shadow_account "
                          "in conf/base/catalog_deployment.yml",
}
_DRIFT_THRESHOLD_KEYS = {"psi", "ks", "min_samples", "eps"}
_DRIFT_MONITOR_KEYS = {"n_bins", "window", "check_every", "halt_on_drift", "calibrate"}


class DeploymentParameterError(ValueError):
    """A ``deployment.*`` parameter is missing or invalid."""


@dataclass(frozen=True)
class DeploymentParams:
    mode: str
    auto_promote: bool
    paper_start: pd.Timestamp | None
    registry_path: Path | None
    account_dir: Path | None
    initial_capital: float | None
    costs: CostModel | None
    risk: RiskLimits
    drift: DriftThresholds
    drift_n_bins: int
    drift_window: int
    drift_check_every: int
    halt_on_drift: bool
    drift_calibrate: float | None
    raw: Mapping[str, Any]
    require_production_model: bool = False
    shadow_account_dir: Path | None = None

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any] | None,
        project_root: Path | None = None,
        *,
        environment: Mapping[str, Any] | None = None,
        registry_path: str | Path | None = None,
        account_dir: str | Path | None = None,
        shadow_account_dir: str | Path | None = None,
    ) -> DeploymentParams:
        if not params:
            raise DeploymentParameterError(
                "parameters 'deployment' not found; add conf/base/parameters_deployment.yml "
                "with a top-level 'deployment:' key."
            )
        moved = sorted(set(params) & set(_MOVED))
        if moved:
            raise DeploymentParameterError(
                f"deployment.{moved[0]} is no longer a deployment parameter: {_MOVED[moved[0]]}. "
                "Remove it from parameters_deployment.yml so the values cannot disagree."
            )
        unknown = sorted(set(params) - _KNOWN)
        if unknown:
            raise DeploymentParameterError(
                f"unknown parameters deployment.{unknown}; allowed: {sorted(_KNOWN)}"
            )
        auto = params.get("auto_promote", True)
        if not isinstance(auto, bool):
            raise DeploymentParameterError(
                f"deployment.auto_promote must be true or false, got {auto!r}")
        require = params.get("require_production_model", False)
        if not isinstance(require, bool):
            raise DeploymentParameterError(
                f"deployment.require_production_model must be true or false, got {require!r}")
        start = params.get("paper_start")
        try:
            start = None if start is None else pd.Timestamp(start)
        except (TypeError, ValueError) as exc:
            raise DeploymentParameterError(
                f"deployment.paper_start={start!r} is not a date; use e.g. '2018-01-01'.") from exc
        drift = dict(params.get("drift") or {})
        bad = sorted(set(drift) - _DRIFT_THRESHOLD_KEYS - _DRIFT_MONITOR_KEYS)
        if bad:
            raise DeploymentParameterError(f"unknown parameters deployment.drift.{bad}")
        for key in ("n_bins", "window", "check_every"):
            v = drift.get(key, 1)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DeploymentParameterError(
                    f"deployment.drift.{key} must be a positive integer, got {v!r}")

        def resolve(p: str | Path | None) -> Path | None:
            if p is None:
                return None
            path = Path(p)
            return path if path.is_absolute() or project_root is None else Path(project_root) / path

        costs = capital = None
        if environment is not None:
            costs = CostModel.from_environment(environment)
            if "initial_capital" not in environment:
                raise DeploymentParameterError(
                    "environment.initial_capital is missing; the paper account starts with it.")
            capital = float(environment["initial_capital"])
        return cls(
            mode=params.get("mode", "paper_trading"),
            auto_promote=auto,
            paper_start=start,
            registry_path=resolve(registry_path),
            account_dir=resolve(account_dir),
            initial_capital=capital,
            costs=costs,
            risk=RiskLimits.from_params(params.get("risk") or {}),
            drift=DriftThresholds(**{k: v for k, v in drift.items() if k in _DRIFT_THRESHOLD_KEYS}),
            drift_n_bins=int(drift.get("n_bins", 10)),
            drift_window=int(drift.get("window", 60)),
            drift_check_every=int(drift.get("check_every", 1)),
            halt_on_drift=bool(drift.get("halt_on_drift", True)),
            drift_calibrate=drift.get("calibrate"),
            raw=params,
            require_production_model=require,
            shadow_account_dir=resolve(shadow_account_dir),
        )
