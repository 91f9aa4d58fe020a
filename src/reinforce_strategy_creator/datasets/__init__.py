"""Custom Kedro datasets.

Imports are lazy so that loading one dataset never imports another's optional
dependencies (e.g. ``yfinance``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GateDecisionLogDataset": "reinforce_strategy_creator.datasets.deployment",
    "ModelRegistryDataset": "reinforce_strategy_creator.datasets.deployment",
    "PaperAccountDataset": "reinforce_strategy_creator.datasets.deployment",
    "FoldCacheDataset": "reinforce_strategy_creator.datasets.fold_cache",
    "SourcedCSVDataset": "reinforce_strategy_creator.datasets.sourced",
    "SourcedParquetDataset": "reinforce_strategy_creator.datasets.sourced",
    "PolicyArtifactDataset": "reinforce_strategy_creator.datasets.policy_artifact",
    "YFinanceDataset": "reinforce_strategy_creator.datasets.yfinance_dataset",
    "DataSourceError": "reinforce_strategy_creator.datasets.yfinance_dataset",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)  # noqa: PLE0605  (lazy re-exports, resolved by __getattr__)
