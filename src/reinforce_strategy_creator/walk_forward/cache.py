"""Fold results stored under a fingerprint: a fold that has not changed is not retrained.

A fold reads the data up to the end of its validation window (one instrument's prices, or a
universe's panel: dates, tickers, closes and features), its window dates, the blocks of
parameters that shape training and selection, and the code. :func:`fold_key` hashes exactly
those, for one asset or a universe alike; a re-run with nothing changed finds every fold's key and
trains nothing, and appending a year of bars adds one new fold (and moves the deployment fold)
while the earlier folds, whose data slices and windows are unchanged, keep their keys whatever
their names become.

A stored fold is its policies (the same JSON + safetensors artifact as training writes: loading
one cannot run code), training histories and validation records as Parquet, and its choices as
JSON (``fold.json``, which also records each policy's digest: a policy is checked against it
before it is used, and one that was changed is refused). A store is written to a temporary
folder and renamed into place, so a crash leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifacts import load_policy_bundle, save_policy_bundle
from ..panel import PortfolioPanel
from .folds import Fold

__all__ = ["FoldCache", "code_version", "data_fingerprint", "fold_key", "key_parameters"]

#: parameter blocks a single-asset fold's training and selection depend on (walk_forward enters
#: via the windows)
KEY_BLOCKS = ("feature_engineering", "environment", "training", "evaluation")
#: feature_engineering keys of the single split that a fold does not read
SINGLE_SPLIT_KEYS = ("splits", "embargo_bars", "min_split_rows")


@cache
def code_version() -> str:
    """sha256 over the package's Python sources: any change of code invalidates every fold."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def data_fingerprint(data: pd.DataFrame | PortfolioPanel, stop_row: int) -> str:
    """SHA-256 of the first ``stop_row`` rows of a price table (every column and the dates) or of a
    universe's panel (its tickers, feature names, dates, closes and features)."""
    if isinstance(data, PortfolioPanel):
        seen = data.rows(0, stop_row)
        h = hashlib.sha256()
        names = [list(seen.tickers), list(seen.feature_names), [d.isoformat() for d in seen.dates]]
        h.update(json.dumps(names).encode())
        h.update(np.ascontiguousarray(np.nan_to_num(seen.close, nan=-1.0)).tobytes())
        h.update(np.ascontiguousarray(np.nan_to_num(seen.features, nan=-1.0)).tobytes())
        return h.hexdigest()
    seen = data.iloc[:stop_row]
    return hashlib.sha256(pd.util.hash_pandas_object(seen, index=True).to_numpy().tobytes()).hexdigest()


def key_parameters(parameters: Mapping[str, Any], agents: Sequence[str]) -> dict[str, Any]:
    """The blocks of a single-asset run's ``parameters`` that a fold of ``agents`` reads: the
    features and scaler (not the single split's keys), the environment, the ``common`` training
    settings and those agents' blocks, and the evaluation."""
    params = {block: parameters.get(block) for block in KEY_BLOCKS}
    params["feature_engineering"] = {
        k: v for k, v in (params["feature_engineering"] or {}).items() if k not in SINGLE_SPLIT_KEYS
    }
    training = dict(params["training"] or {})
    params["training"] = {k: v for k, v in training.items() if k == "common" or k in agents}
    return params


def fold_key(
    fold: Fold, data: pd.DataFrame | PortfolioPanel, parameters: Mapping[str, Any], agents: Sequence[str]
) -> str:
    """The fingerprint of everything ``fold`` reads: ``data`` (prices or a panel) up to its
    validation end (:func:`data_fingerprint`), its windows, ``parameters`` (the blocks that shape
    training and selection: :func:`key_parameters` for one asset), the agents and the code."""
    payload = {
        "data": data_fingerprint(data, fold.validation.stop_row),
        "windows": {kind: window.to_dict() for kind, window in fold.windows() if kind != "test"},
        "parameters": dict(parameters),
        "agents": sorted(agents),
        "code": code_version(),
    }
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class FoldCache:
    """A folder of fold results by key (``<folder>/<key>/``)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / key

    def __contains__(self, key: str) -> bool:
        return (self.path(key) / "fold.json").is_file()

    def save(self, key: str, result: Any) -> None:
        """Store ``result`` (an ``engine.FoldResult``, of one asset or a universe) under ``key``,
        atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.folder))
        try:
            digests = {}
            for agent, bundle in result.bundles.items():
                digests[agent] = save_policy_bundle(bundle, tmp / f"{agent}.policy")
                result.histories[agent].to_parquet(tmp / f"{agent}.history.parquet")
            result.validation.to_parquet(tmp / "validation.parquet")
            doc = {
                "key": key,
                "fold": result.fold.to_dict(),
                "agents": sorted(result.bundles),
                "champion": result.champion,
                "best_seed": result.best_seed,
                "scaler": None if result.tables is None else result.tables.scaler,
                "policy_sha256": digests,
            }
            (tmp / "fold.json").write_text(json.dumps(doc, indent=1, default=str))
            final = self.path(key)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def load(self, key: str) -> dict[str, Any] | None:
        """The stored parts of the fold under ``key`` (None when absent): ``bundles``,
        ``histories``, ``validation``, ``champion``, ``best_seed``, ``scaler`` (None for a
        universe, whose policies scale their own features)."""
        if key not in self:
            return None
        path = self.path(key)
        record = path / "fold.json"
        doc = json.loads(record.read_text())
        digests = doc.get("policy_sha256") or {}
        fix = f"Delete the stored fold '{path}' so that the next run retrains it."
        return {
            "bundles": {
                a: load_policy_bundle(
                    path / f"{a}.policy",
                    expected_sha256=digests.get(a),
                    recorded_in=f"the fold record '{record}'",
                    fix=fix,
                )
                for a in doc["agents"]
            },
            "histories": {a: pd.read_parquet(path / f"{a}.history.parquet") for a in doc["agents"]},
            "validation": pd.read_parquet(path / "validation.parquet"),
            "champion": doc["champion"],
            "best_seed": {a: int(s) for a, s in doc["best_seed"].items()},
            "scaler": doc["scaler"],
        }
