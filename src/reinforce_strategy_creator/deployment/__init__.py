"""Deployment library: model registry, durable paper account, paper broker, drift monitor.

Plain modules that import without Kedro. The Kedro CLI commands live in
``reinforce_strategy_creator.cli``; user docs in ``docs/paper_trading.md``.
"""

from .broker import (
    CostModel,
    LiveTradingRefused,
    PaperBroker,
    PolicyOutputError,
    PriceDataError,
    RiskLimits,
    clear_halt,
    reconcile,
    replay_trades,
    resolve_mode,
)
from .drift import DriftMonitor, DriftReference, DriftThresholds, build_reference, drift_report, psi
from .params import DeploymentParams, DeploymentSetup
from .registry import ModelRegistry, PromotionRefused, RegistryError
from .state import AccountState, AccountStateError, AccountStore, new_account

__all__ = [
    "AccountState",
    "AccountStateError",
    "AccountStore",
    "CostModel",
    "DeploymentParams",
    "DeploymentSetup",
    "DriftMonitor",
    "DriftReference",
    "DriftThresholds",
    "LiveTradingRefused",
    "ModelRegistry",
    "PaperBroker",
    "PolicyOutputError",
    "PriceDataError",
    "PromotionRefused",
    "RegistryError",
    "RiskLimits",
    "build_reference",
    "clear_halt",
    "drift_report",
    "new_account",
    "psi",
    "reconcile",
    "replay_trades",
    "resolve_mode",
]
