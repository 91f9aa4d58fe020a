"""Kedro dataset for versioned policy artifacts (see :mod:`reinforce_strategy_creator.artifacts`).

Catalog entry::

    training.ppo.policy:
      type: reinforce_strategy_creator.datasets.policy_artifact.PolicyArtifactDataset
      filepath: data/06_models/ppo_policy
      versioned: true

A version lives at ``<filepath>/<version>/<name>/`` and holds ``spec.json`` and one
``seed_<n>.safetensors`` per seed; its digest (the SHA-256 of each of those files) is recorded
beside it, outside the folder, in ``<filepath>/<version>/<name>.sha256.json`` when it is saved.
Loading checks every file against that record first (a version without one is refused) and
never unpickles.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from ..artifacts import (
    SPEC_FILE,
    PolicyBundle,
    digest_record_path,
    load_policy_bundle,
    read_digest_record,
    save_policy_bundle,
)
from ..paths import display_path


class PolicyArtifactDataset(AbstractVersionedDataset[PolicyBundle, PolicyBundle]):
    """Saves and loads a :class:`PolicyBundle` as JSON + safetensors, versioned, with the digest
    record it is checked against on load."""

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
        bundle = load_policy_bundle(
            path,
            version=self.resolve_load_version(),
            expected_sha256=read_digest_record(path),
            recorded_in=f"its digest record '{display_path(digest_record_path(path))}'",
            fix="Retrain it (re-run the pipeline that wrote it), or restore this version and its "
            "digest record from backup.",
        )
        bundle.filepath = display_path(Path(str(self._filepath)))  # where the catalog keeps its versions
        return bundle

    def save(self, data: PolicyBundle) -> None:
        if not isinstance(data, PolicyBundle):
            raise DatasetError(
                f"PolicyArtifactDataset at '{self._filepath}' expects a PolicyBundle, got "
                f"{type(data).__name__}."
            )
        path = Path(self._get_save_path())
        data.sha256 = save_policy_bundle(data, path, record=True)
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
