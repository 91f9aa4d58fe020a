"""What vouches for a policy artifact: the SHA-256 of its files, recorded outside its folder.

:func:`artifact_sha256` is the digest of an artifact folder (the SHA-256 of each file, by name);
:func:`verify_artifact` checks a folder against a digest recorded elsewhere (the digest record
beside a catalog version, a fold record, a registry entry). Hashing only: no torch, so what only
checks an artifact (the registry, the CLI) starts fast; :mod:`.artifacts` loads and saves them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from .errors import InputError

__all__ = [
    "DIGEST_RECORD_SUFFIX",
    "SPEC_FILE",
    "ArtifactError",
    "artifact_sha256",
    "digest_record_path",
    "read_digest_record",
    "sha256_file",
    "verify_artifact",
    "versioned_artifact_path",
]

SPEC_FILE = "spec.json"
#: beside a catalog version's artifact folder ``<name>``: ``<name>.sha256.json``, its digest record
DIGEST_RECORD_SUFFIX = ".sha256.json"


class ArtifactError(InputError):
    """A policy artifact is missing, incomplete or does not match its checksums."""


def sha256_file(path: Path) -> str:
    """The SHA-256 of one file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_sha256(path: str | os.PathLike) -> dict[str, str]:
    """The digest of the artifact folder at ``path``: the SHA-256 of each of its files
    (``spec.json`` and every ``seed_<n>.safetensors``), by file name. The one digest every
    consumer records, and :func:`verify_artifact` checks against."""
    return {p.name: sha256_file(p) for p in sorted(Path(path).iterdir()) if p.is_file()}


def verify_artifact(
    path: str | os.PathLike, expected: Mapping[str, str] | None, *, recorded_in: str, fix: str
) -> dict[str, str]:
    """Check every file of the artifact folder ``path`` against ``expected`` (a digest from
    :func:`artifact_sha256`, recorded outside the folder: ``recorded_in`` says where). Returns
    the digest; :class:`ArtifactError` naming the file, the expected and the found SHA-256 and
    ``fix`` when a file differs or is missing, or when nothing (or no ``spec.json`` hash) was
    recorded: an artifact that cannot be checked is not used."""
    path = Path(path)
    if not isinstance(expected, Mapping) or not expected:
        raise ArtifactError(
            f"Policy artifact '{path}': {recorded_in} records no SHA-256 of its files, so the "
            f"artifact cannot be checked and is not loaded. {fix}"
        )
    if SPEC_FILE not in expected:
        raise ArtifactError(
            f"Policy artifact '{path}': {recorded_in} records no SHA-256 of '{SPEC_FILE}' (only of "
            f"{sorted(expected)}), so the spec cannot be checked and is not loaded. {fix}"
        )
    for name, want in sorted(expected.items()):
        if Path(name).name != name:
            raise ArtifactError(
                f"Policy artifact '{path}': {recorded_in} names {name!r}, which is not a file of "
                f"the artifact folder; the record is corrupt. {fix}"
            )
        file = path / name
        if not file.is_file():
            raise ArtifactError(
                f"Policy artifact file '{file}' is missing; {recorded_in} recorded it with SHA-256 "
                f"{want}. {fix}"
            )
        found = sha256_file(file)
        if found != want:
            raise ArtifactError(
                f"Policy artifact file '{file}' has SHA-256 {found}, but {recorded_in} recorded "
                f"{want}: the file was changed after it was recorded (edited, corrupted or "
                f"replaced), so the artifact is not loaded. {fix}"
            )
    return dict(expected)


def digest_record_path(path: str | os.PathLike) -> Path:
    """Where the digest of the artifact folder ``path`` is recorded when it is saved with a
    record: ``<name>.sha256.json`` beside the folder (outside it)."""
    path = Path(path)
    return path.with_name(path.name + DIGEST_RECORD_SUFFIX)


def read_digest_record(path: str | os.PathLike) -> dict[str, str] | None:
    """The digest recorded beside the artifact folder ``path`` (``None`` when there is no
    record, which :func:`verify_artifact` refuses); :class:`ArtifactError` when it is unreadable."""
    record = digest_record_path(path)
    if not record.is_file():
        return None
    try:
        doc = json.loads(record.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(
            f"Digest record '{record}' of policy artifact '{path}' is not valid JSON ({exc}); "
            "the artifact cannot be checked and is not loaded. Retrain it or restore the version "
            "from backup."
        ) from exc
    files = doc.get("sha256") if isinstance(doc, dict) else None
    return dict(files) if isinstance(files, dict) else None


def versioned_artifact_path(filepath: str | os.PathLike, version: str) -> Path:
    """The folder of version ``version`` of the catalog artifact ``filepath``:
    ``<filepath>/<version>/<name of filepath>``, Kedro's layout of a versioned dataset."""
    filepath = Path(filepath)
    return filepath / version / filepath.name
