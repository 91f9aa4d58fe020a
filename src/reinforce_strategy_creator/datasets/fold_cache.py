"""``FoldCacheDataset``: the walk-forward fold store as a catalog entry.

*load*: a :class:`~reinforce_strategy_creator.walk_forward.cache.FoldCache` handle on the folder
(``filepath``); the fold nodes look their fold up by fingerprint and store what they train.
The store is a cache, not an artifact of one run: nothing is saved through the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from ..walk_forward.cache import FoldCache


class FoldCacheDataset(AbstractDataset[None, FoldCache]):
    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> FoldCache:
        return FoldCache(self._filepath)

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._filepath}: the fold store is written by the fold nodes, not saved to")

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
