"""Where a deployment's files live: the registry and the paper accounts.

The ``deployment`` parameter block itself is :class:`~..params.deployment.DeploymentParams`;
the paths are catalog entries (``conf/base/catalog_deployment.yml``), read by the pipeline and
by ``kedro models ...`` / ``kedro paper ...`` alike, resolved against the project root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..env.config import EnvConfig
from ..params.deployment import DeploymentParams, DriftParams, RiskParams

__all__ = ["DeploymentParams", "DeploymentSetup", "DriftParams", "RiskParams"]


@dataclass(frozen=True)
class DeploymentSetup:
    """What ``kedro models ...`` / ``kedro paper ...`` need: the ``deployment`` and ``environment``
    blocks, and the registry file and account folders resolved against the project root: the
    single instrument's production and shadow accounts, and the universe's (``portfolio.account``,
    ``portfolio.shadow_account``; ``None`` when the catalog declares none)."""

    params: DeploymentParams
    environment: EnvConfig
    registry_path: Path
    account_dir: Path
    shadow_account_dir: Path
    universe_account_dir: Path | None = None
    universe_shadow_account_dir: Path | None = None

    @property
    def accounts(self) -> dict[str, Path]:
        """Every paper account folder by role: ``production``, ``shadow``, then the universe's
        ``universe`` and ``universe_shadow`` when declared."""
        roles = {
            "production": self.account_dir,
            "shadow": self.shadow_account_dir,
            "universe": self.universe_account_dir,
            "universe_shadow": self.universe_shadow_account_dir,
        }
        return {role: folder for role, folder in roles.items() if folder is not None}

    @property
    def mode(self) -> str:
        return self.params.mode

    @property
    def risk(self) -> RiskParams:
        return self.params.risk

    @property
    def initial_capital(self) -> float:
        """Every account starts with ``environment.initial_capital`` (never a copy)."""
        return float(self.environment.initial_capital)

    @property
    def costs(self):
        """The environment's costs and fill price (never a copy)."""
        from .account import CostModel

        return CostModel.from_environment(self.environment.to_params())
