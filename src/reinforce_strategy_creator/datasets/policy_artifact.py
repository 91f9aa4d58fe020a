"""Kedro dataset for versioned policy artifacts (see :mod:`reinforce_strategy_creator.artifacts`).

Catalog entry::

    training.ppo.policy:
      type: reinforce_strategy_creator.datasets.policy_artifact.PolicyArtifactDataset
      filepath: data/06_models/ppo_policy
      versioned: true

A version lives at ``<filepath>/<version>/<name>/`` and holds ``spec.json`` and one
``seed_<n>.safetensors`` per seed. Loading never unpickles.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from ..artifacts import SPEC_FILE, PolicyBundle, load_policy_bundle, save_policy_bundle
from ..paths import display_path


class PolicyArtifactDataset(AbstractVersionedDataset[PolicyBundle, PolicyBundle]):
    """Saves and loads a :class:`PolicyBundle` as JSON + safetensors, versioned."""

    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            filepath=PurePosixPath(Path(filepath).as_posix()),
            version=version,
            exists_function=lambda p: (Path(p) / SPEC_FILE).is_file(),
        )
        self.metadata = metadata

    def load(self) -> PolicyBundle:
        path = Path(self._get_load_path())
        bundle = load_policy_bundle(path, version=self.resolve_load_version())
        bundle.filepath = display_path(Path(str(self._filepath)))  # where the catalog keeps its versions
        return bundle

    def save(self, data: PolicyBundle) -> None:
        if not isinstance(data, PolicyBundle):
            raise DatasetError(
                f"PolicyArtifactDataset at '{self._filepath}' expects a PolicyBundle, got "
                f"{type(data).__name__}."
            )
        path = Path(self._get_save_path())
        save_policy_bundle(data, path)
        data.version = self.resolve_save_version()
        data.filepath = display_path(Path(str(self._filepath)))
        self._cached_load_version = None  # the next load looks for the newest version again

    def _exists(self) -> bool:
        try:
            path = Path(self._get_load_path())
        except DatasetError:
            return False
        return (path / SPEC_FILE).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}
