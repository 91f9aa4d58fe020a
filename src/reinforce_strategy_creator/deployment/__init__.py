"""Deployment library: model registry, durable paper account (one class for N >= 1 assets), drift monitor.

Plain modules that import without Kedro. The Kedro CLI commands live in
``reinforce_strategy_creator.cli``; user docs in ``docs/paper_trading.md``.
"""

from ..lazy import lazy_attributes

#: Public names and the submodule of each, imported when the name is first used: the registry,
#: the account state, the operations and the parameters import without pandas or torch (the
#: ``kedro models`` / ``kedro paper`` commands), the paper account and the drift monitor with them.
WHERE = {
    "CostModel": ".account",
    "PaperAccount": ".account",
    "PolicyOutputError": ".account",
    "PriceDataError": ".account",
    "RiskLimits": ".risk",
    "DriftMonitor": ".drift",
    "DriftReference": ".drift",
    "DriftThresholds": ".drift",
    "build_reference": ".drift",
    "drift_report": ".drift",
    "psi": ".drift",
    "LiveTradingRefused": ".operations",
    "clear_halt": ".operations",
    "reconcile": ".operations",
    "resolve_mode": ".operations",
    "DeploymentParams": ".params",
    "DeploymentSetup": ".params",
    "ModelRegistry": ".registry",
    "PromotionRefused": ".registry",
    "RegistryError": ".registry",
    "AccountState": ".state",
    "AccountStateError": ".state",
    "AccountStore": ".state",
    "new_account": ".state",
}
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
    "PaperAccount",
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
    "resolve_mode",
]
__getattr__, __dir__ = lazy_attributes(__name__, WHERE)
