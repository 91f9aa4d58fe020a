"""Policy artifacts that load without executing code, and only after their hashes are checked.

A trained agent is stored as a folder:

* ``spec.json``: everything needed to rebuild the policy and act with it without the
  training code's objects (algorithm, network, feature names, window, positions,
  scaler reference, data fingerprint, package version, seeds and their validation
  scores), plus the SHA-256 of every weight file (``weights_sha256``);
* ``seed_<n>.safetensors``: the weights of the policy trained with seed ``n``.

Nothing in the folder vouches for itself: :func:`artifact_sha256` is the digest of the folder
(the SHA-256 of each of its files, by name), recorded *outside* the folder when it is written
(the digest record beside a catalog version, a fold record, a registry entry), and
:func:`load_policy_bundle` refuses to read an artifact unless it is given that digest and every
file still matches it (:func:`verify_artifact`). An edited ``spec.json`` (positions, network) or
weight file is refused with the file, both hashes and the fix; so is a spec whose
``weights_sha256`` does not cover every seed it lists.

Why hand-written: model registries such as MLflow pickle by default, and
``torch.save`` is a pickle. safetensors holds plain tensors and JSON holds the rest,
so reading an artifact can never run code. The folder is written to a temporary
sibling and renamed into place, so a crash never leaves a half-written artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .agents.ensemble import SeedEnsemble, ensemble_rule
from .agents.members import start_at_benchmark
from .agents.policy import build_policy
from .agents.population import benchmark_action
from .artifact_digest import (
    DIGEST_RECORD_SUFFIX,
    SPEC_FILE,
    ArtifactError,
    artifact_sha256,
    digest_record_path,
    read_digest_record,
    sha256_file,
    verify_artifact,
    versioned_artifact_path,
)
from .atomic_io import atomic_write_json
from .candidates import ENSEMBLE_SEED

__all__ = [
    "DIGEST_RECORD_SUFFIX",
    "FORMAT_VERSION",
    "SPEC_FILE",
    "ArtifactError",
    "PolicyBundle",
    "artifact_sha256",
    "digest_record_path",
    "load_policy_bundle",
    "read_digest_record",
    "save_policy_bundle",
    "verify_artifact",
    "versioned_artifact_path",
]

FORMAT_VERSION = 1
REQUIRED_SPEC_KEYS = ("algorithm", "network", "feature_names", "window", "positions", "seeds")


@dataclass
class PolicyBundle:
    """The policies of one agent, one per training seed, and their shared spec."""

    spec: dict[str, Any]
    state_dicts: dict[int, dict[str, torch.Tensor]]
    version: str | None = field(default=None, compare=False)
    #: the artifact folder the catalog keeps its versions in (relative to the project root)
    filepath: str | None = field(default=None, compare=False)
    #: the digest (:func:`artifact_sha256`) the files were checked against when loaded, or
    #: written with when saved; ``None`` for a bundle that never touched disk
    sha256: dict[str, str] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        missing = [k for k in REQUIRED_SPEC_KEYS if k not in self.spec]
        if missing:
            raise ArtifactError(f"Policy spec lacks required keys {missing}; it has {sorted(self.spec)}.")
        seeds = sorted(int(s) for s in self.state_dicts)
        if seeds != sorted(int(s) for s in self.spec["seeds"]):
            raise ArtifactError(
                f"Policy spec lists seeds {self.spec['seeds']} but weights are given for seeds {seeds}."
            )

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.state_dicts)

    def best_seed(self) -> int:
        """The seed that scored best on validation during training (recorded in the spec)."""
        if "best_seed" in self.spec:
            return int(self.spec["best_seed"])
        return self.seeds[0]

    def load_policy(self, seed: int | None = None, device: str = "cpu", name: str | None = None):
        """The trained policy of ``seed`` (default: the best on validation), rebuilt from the JSON
        spec and loaded with its weights, in eval mode on ``device``; ``seed=ENSEMBLE_SEED`` (-1)
        gives the seed ensemble of every seed (``agents.ensemble``). The one way evaluation,
        deployment and notebooks turn an artifact back into a network; ``name`` is how errors
        call the artifact (default ``policy artifact (version ...)``)."""
        where = name or f"policy artifact (version {self.version or 'unknown'})"
        seed = self.best_seed() if seed is None else int(seed)
        if seed == ENSEMBLE_SEED:
            rule = self.spec.get("ensemble_rule") or ensemble_rule(self.spec.get("kind", ""))
            members = [self._member(s, where) for s in self.seeds]
            return SeedEnsemble(members, rule).to(device).eval()
        if seed not in self.state_dicts:
            raise ArtifactError(
                f"{where} has no weights for seed {seed} (it has seeds {self.seeds}, and "
                f"{ENSEMBLE_SEED} for their ensemble); choose one of them."
            )
        return self._member(seed, where).to(device).eval()

    def at_start(self) -> PolicyBundle:
        """The same agent with every seed's output layer set back to its benchmark start
        (``agents.members.start_at_benchmark``): each seed, and so the seed ensemble, holds the
        benchmark's book (fully long at N = 1, equal weight at N >= 2). The spec records it
        (``held_benchmark: true``). What an agent trades when its trained seeds, voting together,
        did not beat the benchmark on validation by its margin."""
        portfolio = str(self.spec.get("kind", "")).startswith("portfolio")  # its start: equal weight
        action = None if portfolio else benchmark_action(self.spec["positions"])
        states = {}
        for seed in self.seeds:
            policy = self._member(seed, "policy bundle")
            start_at_benchmark(policy, action)
            states[seed] = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        return PolicyBundle({**self.spec, "held_benchmark": True}, states)

    def same_weights(self, other: PolicyBundle) -> bool:
        """Whether ``other`` holds bit for bit the same weights for the same seeds."""
        return self.state_dicts.keys() == other.state_dicts.keys() and all(
            a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            for a, b in ((self.state_dicts[s], other.state_dicts[s]) for s in self.state_dicts)
        )

    def _member(self, seed: int, where: str):
        try:
            # the network's random initial weights are overwritten at once: drawn from a forked
            # CPU generator, they leave the global one (and every seeded draw after it) as it was
            with torch.random.fork_rng(devices=[]):
                policy = build_policy(self.spec)
            policy.load_state_dict(self.state_dicts[seed])
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise ArtifactError(
                f"{where}: seed {seed} cannot be rebuilt from its spec and weights "
                f"({' '.join(str(exc).split())}); "
                "the weights do not fit spec.network/obs_dim, so the artifact is corrupt or from another "
                "version. "
                "Retrain it."
            ) from exc
        return policy


def save_policy_bundle(
    bundle: PolicyBundle, path: str | os.PathLike, *, record: bool = False
) -> dict[str, str]:
    """Write ``bundle`` as a folder at ``path``, atomically (temp folder + rename); returns its
    digest (:func:`artifact_sha256`). ``record``: also write the digest to
    :func:`digest_record_path` (before the folder is renamed into place, so an artifact never
    appears without its record)."""
    path = Path(path)
    if path.exists():
        raise ArtifactError(f"Refusing to overwrite existing policy artifact at '{path}'.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        checksums = {}
        for seed, state in sorted(bundle.state_dicts.items()):
            name = f"seed_{int(seed)}.safetensors"
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
            save_file(tensors, str(tmp / name), metadata={"seed": str(int(seed))})
            checksums[name] = sha256_file(tmp / name)
        spec = dict(bundle.spec)
        spec["format_version"] = FORMAT_VERSION
        spec["weights_sha256"] = checksums
        with open(tmp / SPEC_FILE, "w", encoding="utf-8") as fh:
            json.dump(spec, fh, indent=2, sort_keys=True, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        digest = artifact_sha256(tmp)
        if record:
            atomic_write_json(digest_record_path(path), {"artifact": path.name, "sha256": digest})
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest


def load_policy_bundle(
    path: str | os.PathLike,
    version: str | None = None,
    *,
    expected_sha256: Mapping[str, str] | None,
    recorded_in: str,
    fix: str = "Retrain it (re-run the pipeline that wrote it) or restore it from backup.",
) -> PolicyBundle:
    """Read a policy artifact folder after checking it against ``expected_sha256``, its digest as
    recorded outside the folder (``recorded_in`` names where, ``fix`` says what to do; see
    :func:`verify_artifact`). The spec must record the SHA-256 of the weights of every seed it
    lists. Reads JSON and safetensors only."""
    path = Path(path)
    spec_path = path / SPEC_FILE
    where = f"'{path}'" + (f" (version {version})" if version else "")
    if not spec_path.is_file():
        raise ArtifactError(
            f"No policy artifact at {where}: '{SPEC_FILE}' is missing. "
            "Run the training pipeline first (kedro run --pipelines training)."
        )
    expected = verify_artifact(path, expected_sha256, recorded_in=recorded_in, fix=fix)
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"Policy artifact {where}: '{SPEC_FILE}' is not valid JSON ({exc}); the artifact is "
            "corrupt. Retrain or restore it."
        ) from exc
    if not isinstance(spec, dict):
        raise ArtifactError(
            f"Policy artifact {where}: '{SPEC_FILE}' holds {type(spec).__name__}, not a JSON object; "
            "the artifact is corrupt. Retrain or restore it."
        )
    checksums = spec.get("weights_sha256")
    if not isinstance(checksums, dict):
        raise ArtifactError(
            f"Policy artifact {where}: '{SPEC_FILE}' records no weights_sha256 (the SHA-256 of each "
            f"weight file), so its weights cannot be checked and it is not loaded. {fix}"
        )
    state_dicts: dict[int, dict[str, torch.Tensor]] = {}
    for seed in spec.get("seeds", []):
        name = f"seed_{int(seed)}.safetensors"
        weights = path / name
        if not weights.is_file():
            raise ArtifactError(f"Policy artifact {where} lists seed {seed} but '{name}' is missing.")
        if name not in checksums:
            raise ArtifactError(
                f"Policy artifact {where}: '{SPEC_FILE}' lists seed {seed} but its weights_sha256 "
                f"records no SHA-256 for '{name}', so those weights cannot be checked and the "
                f"artifact is not loaded. {fix}"
            )
        if name not in expected:
            raise ArtifactError(
                f"Policy artifact {where}: '{SPEC_FILE}' lists seed {seed} but {recorded_in} "
                f"records no SHA-256 for '{name}': the seed was added after the artifact was "
                f"recorded. {fix}"
            )
        if checksums[name] != expected[name]:
            raise ArtifactError(
                f"Policy artifact file '{weights}' has SHA-256 {expected[name]}, but '{SPEC_FILE}' "
                f"records {checksums[name]} for it; the artifact is inconsistent and is not loaded. "
                f"{fix}"
            )
        try:
            state_dicts[int(seed)] = load_file(str(weights))
        except Exception as exc:  # safetensors raises its own SafetensorError on a malformed file
            raise ArtifactError(
                f"Policy artifact {where}: '{name}' is not a readable safetensors file ({exc}); "
                "the artifact is corrupt. Retrain or restore it."
            ) from exc
    try:
        return PolicyBundle(spec=spec, state_dicts=state_dicts, version=version, sha256=expected)
    except ArtifactError as exc:
        raise ArtifactError(f"Policy artifact {where}: {exc}") from exc


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable in a policy spec.")
