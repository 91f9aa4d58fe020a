"""Small real policy artifacts for registry tests, and the edits a tester made to registered ones.

``save_version`` writes a version the way the catalog does (``PolicyArtifactDataset``: the folder
plus its digest record beside it) and returns its digest; ``TAMPERS`` are edits of an artifact
folder that must never load: a long-only spec turned short, the network's activation swapped, and
the spec's weight checksums removed together with a flipped byte in a weight file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from kedro.io import Version

from reinforce_strategy_creator.agents.networks import ActorCriticPolicy
from reinforce_strategy_creator.artifacts import PolicyBundle, artifact_sha256, versioned_artifact_path
from reinforce_strategy_creator.datasets.policy_artifact import PolicyArtifactDataset


def save_version(
    filepath: Path, version: str, seeds: tuple[int, ...] = (0,), activation: str = "relu"
) -> dict[str, str]:
    """A long-only (positions ``[0, 1]``) actor-critic artifact saved as version ``version`` of the
    catalog folder ``filepath``; returns its digest."""
    nets = {}
    for seed in seeds:
        torch.manual_seed(seed)
        nets[seed] = ActorCriticPolicy(6, 2, (8,), activation)
    spec = {
        **nets[seeds[0]].spec,
        "feature_names": ["feat_a"],
        "window": 1,
        "positions": [0, 1],
        "seeds": list(seeds),
        "best_seed": seeds[0],
    }
    bundle = PolicyBundle(spec=spec, state_dicts={s: n.state_dict() for s, n in nets.items()})
    PolicyArtifactDataset(str(filepath), version=Version(None, version)).save(bundle)
    return artifact_sha256(versioned_artifact_path(filepath, version))


def edit_spec(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = Path(folder) / "spec.json"
    spec = json.loads(path.read_text())
    edit(spec)
    path.write_text(json.dumps(spec, indent=2, sort_keys=True))


def _short(spec: dict[str, Any]) -> None:
    """Long-only to short: ``positions`` and, where the spec records it, the trained environment's
    (what the paper account maps actions through)."""
    assert spec["positions"] == [0, 1]
    spec["positions"] = [0, -1]
    if "environment" in spec:
        spec["environment"]["positions"] = [0, -1]


def _swap_activation(spec: dict[str, Any]) -> None:
    network = spec["network"]
    network["activation"] = {"relu": "tanh", "tanh": "relu"}[network["activation"]]


def _unchecked_flipped_weights(folder: Path) -> None:
    edit_spec(folder, lambda spec: spec.pop("weights_sha256"))
    weights = sorted(Path(folder).glob("seed_*.safetensors"))[0]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # the last byte of the last tensor: still a readable safetensors file
    weights.write_bytes(bytes(data))


#: name -> (edit of an artifact folder, the first file (by name) whose hash no longer matches)
TAMPERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "positions [0, 1] -> [0, -1]": (lambda folder: edit_spec(folder, _short), "spec.json"),
    "network.activation swapped": (lambda folder: edit_spec(folder, _swap_activation), "spec.json"),
    "weights_sha256 removed + weight bytes flipped": (_unchecked_flipped_weights, "seed_0.safetensors"),
}
