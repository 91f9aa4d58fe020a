"""Policy artifacts that load without executing code.

A trained agent is stored as a folder:

* ``spec.json``: everything needed to rebuild the policy and act with it without the
  training code's objects (algorithm, network, feature names, window, positions,
  scaler reference, data fingerprint, package version, seeds and their validation
  scores), plus the SHA-256 of every weight file;
* ``seed_<n>.safetensors``: the weights of the policy trained with seed ``n``.

Why hand-written: model registries such as MLflow pickle by default, and
``torch.save`` is a pickle. safetensors holds plain tensors and JSON holds the rest,
so reading an artifact can never run code. The folder is written to a temporary
sibling and renamed into place, so a crash never leaves a half-written artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .candidates import ENSEMBLE_SEED
from .errors import InputError

SPEC_FILE = "spec.json"
FORMAT_VERSION = 1
REQUIRED_SPEC_KEYS = ("algorithm", "network", "feature_names", "window", "positions", "seeds")


class ArtifactError(InputError):
    """A policy artifact is missing, incomplete or does not match its checksums."""


@dataclass
class PolicyBundle:
    """The policies of one agent, one per training seed, and their shared spec."""

    spec: dict[str, Any]
    state_dicts: dict[int, dict[str, torch.Tensor]]
    version: str | None = field(default=None, compare=False)
    #: the artifact folder the catalog keeps its versions in (relative to the project root)
    filepath: str | None = field(default=None, compare=False)

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
        from .agents.ensemble import SeedEnsemble, ensemble_rule

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

    def _member(self, seed: int, where: str):
        from .agents.policy import build_policy  # torch networks only when a policy is needed

        try:
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_policy_bundle(bundle: PolicyBundle, path: str | os.PathLike) -> None:
    """Write ``bundle`` as a folder at ``path``, atomically (temp folder + rename)."""
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
            checksums[name] = _sha256(tmp / name)
        spec = dict(bundle.spec)
        spec["format_version"] = FORMAT_VERSION
        spec["weights_sha256"] = checksums
        with open(tmp / SPEC_FILE, "w", encoding="utf-8") as fh:
            json.dump(spec, fh, indent=2, sort_keys=True, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_policy_bundle(path: str | os.PathLike, version: str | None = None) -> PolicyBundle:
    """Read a policy artifact folder. Reads JSON and safetensors only."""
    path = Path(path)
    spec_path = path / SPEC_FILE
    where = f"'{path}'" + (f" (version {version})" if version else "")
    if not spec_path.is_file():
        raise ArtifactError(
            f"No policy artifact at {where}: '{SPEC_FILE}' is missing. "
            "Run the training pipeline first (kedro run --pipelines training)."
        )
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
    checksums = spec.get("weights_sha256", {})
    state_dicts: dict[int, dict[str, torch.Tensor]] = {}
    for seed in spec.get("seeds", []):
        name = f"seed_{int(seed)}.safetensors"
        weights = path / name
        if not weights.is_file():
            raise ArtifactError(f"Policy artifact {where} lists seed {seed} but '{name}' is missing.")
        expected = checksums.get(name)
        if expected is not None and _sha256(weights) != expected:
            raise ArtifactError(
                f"Policy artifact {where}: '{name}' does not match the SHA-256 recorded in '{SPEC_FILE}'; "
                "the file was modified or is corrupt. Retrain or restore it."
            )
        try:
            state_dicts[int(seed)] = load_file(str(weights))
        except Exception as exc:  # safetensors raises its own SafetensorError on a malformed file
            raise ArtifactError(
                f"Policy artifact {where}: '{name}' is not a readable safetensors file ({exc}); "
                "the artifact is corrupt. Retrain or restore it."
            ) from exc
    try:
        return PolicyBundle(spec=spec, state_dicts=state_dicts, version=version)
    except ArtifactError as exc:
        raise ArtifactError(f"Policy artifact {where}: {exc}") from exc


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable in a policy spec.")
