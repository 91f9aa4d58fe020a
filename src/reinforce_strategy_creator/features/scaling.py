"""The scaler: fit on training rows only, persisted as plain JSON (no pickle), and fingerprints.

Loading a scaler cannot execute code: it is a JSON dict of centres and scales that rebuilds a
scikit-learn scaler for ``transform`` only. ``scaler_sha256`` and ``feature_spec_sha256``
fingerprint what a policy was trained on, so evaluation and deployment can refuse a mismatch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.preprocessing import RobustScaler, StandardScaler

from ..params.features import FeatureSpec
from .errors import ScalerFormatError
from .indicators import PRICE_COLUMNS

FEATURE_PREFIX = "feat_"
SCALER_KINDS = ("standard", "robust")


# --------------------------------------------------------------------------- scaling
def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The feature columns, in order: exactly those whose name starts with ``feat_``."""
    return [c for c in frame.columns if str(c).startswith(FEATURE_PREFIX)]


def fit_scaler(train_features: pd.DataFrame, kind: str) -> StandardScaler | RobustScaler:
    """Fit a scikit-learn scaler on the training feature rows only (numpy, float64)."""
    if kind not in SCALER_KINDS:
        raise ScalerFormatError(f"feature_engineering.scaler = {kind!r}; use one of {list(SCALER_KINDS)}.")
    x = train_features[feature_columns(train_features)].to_numpy(dtype=np.float64)
    if len(x) == 0 or not np.isfinite(x).all():
        raise ScalerFormatError("the training features are empty or contain NaN/inf rows.")
    scaler = StandardScaler() if kind == "standard" else RobustScaler()
    return scaler.fit(x)


def _iso(value: Any) -> str:
    return pd.Timestamp(value).isoformat()


def scaler_to_dict(
    scaler: StandardScaler | RobustScaler,
    names: Sequence[str],
    *,
    fit_rows: int,
    fit_start: Any,
    fit_end: Any,
) -> dict[str, Any]:
    """The contract's JSON dict for a fitted scaler (plain floats; ``repr`` round-trips)."""
    if isinstance(scaler, StandardScaler):
        kind, center = "standard", scaler.mean_
    elif isinstance(scaler, RobustScaler):
        kind, center = "robust", scaler.center_
    else:
        raise ScalerFormatError(f"unsupported scaler type {type(scaler).__name__}.")
    if len(names) != len(center):
        raise ScalerFormatError(f"{len(names)} feature names for a scaler of {len(center)} columns.")
    return {
        "kind": kind,
        "feature_names": [str(n) for n in names],
        "center": [float(v) for v in center],
        "scale": [float(v) for v in scaler.scale_],
        "fit_rows": int(fit_rows),
        "fit_start": _iso(fit_start),
        "fit_end": _iso(fit_end),
        "sklearn_version": sklearn.__version__,
    }


_SCALER_KEYS = {
    "kind", "feature_names", "center", "scale", "fit_rows", "fit_start", "fit_end",
    "sklearn_version",
}  # fmt: skip


def scaler_from_dict(d: Mapping[str, Any]) -> StandardScaler | RobustScaler:
    """Rebuild a fitted scaler from its JSON dict (validates it first).

    ``StandardScaler.var_`` is set to ``scale²``; only ``transform`` is meant to be used.
    """
    if not isinstance(d, Mapping) or set(d) != _SCALER_KEYS:
        got = sorted(d) if isinstance(d, Mapping) else type(d).__name__
        raise ScalerFormatError(f"feature_scaler must have keys {sorted(_SCALER_KEYS)}, got {got}.")
    if d["kind"] not in SCALER_KINDS:
        raise ScalerFormatError(f"feature_scaler.kind = {d['kind']!r}; expected {SCALER_KINDS}.")
    center = np.asarray(d["center"], dtype=np.float64)
    scale = np.asarray(d["scale"], dtype=np.float64)
    n = len(d["feature_names"])
    if center.shape != (n,) or scale.shape != (n,):
        raise ScalerFormatError("feature_scaler center/scale lengths differ from feature_names.")
    if not (np.isfinite(center).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise ScalerFormatError("feature_scaler center must be finite and scale finite and > 0.")
    if d["kind"] == "standard":
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_, scaler.var_ = center, scale, scale**2
        scaler.n_samples_seen_ = int(d["fit_rows"])
    else:
        scaler = RobustScaler()
        scaler.center_, scaler.scale_ = center, scale
    scaler.n_features_in_ = n
    return scaler


def scale_features(frame: pd.DataFrame, scaler_dict: Mapping[str, Any]) -> pd.DataFrame:
    """Scale the ``feat_*`` columns of ``frame`` with a scaler dict; float32, same index."""
    names = feature_columns(frame)
    if names != list(scaler_dict.get("feature_names", [])):
        raise ScalerFormatError(
            f"feature columns {names} do not match feature_scaler.feature_names "
            f"{scaler_dict.get('feature_names')}; re-run feature_engineering."
        )
    scaler = scaler_from_dict(scaler_dict)
    values = scaler.transform(frame[names].to_numpy(dtype=np.float64))
    if not np.isfinite(values).all():
        raise ScalerFormatError("scaled features contain NaN/inf; warm-up rows must be dropped first.")
    return pd.DataFrame(values.astype(np.float32), index=frame.index.copy(), columns=names)


def build_model_input(
    features: pd.DataFrame, prices: pd.DataFrame, scaler_dict: Mapping[str, Any]
) -> pd.DataFrame:
    """Model-input table: scaled ``feat_*`` (float32) then raw OHLCV (float64)."""
    scaled = scale_features(features, scaler_dict)
    raw = prices.loc[features.index, list(PRICE_COLUMNS)].astype(np.float64)
    out = pd.concat([scaled, raw], axis=1)
    out.index.name = "date"
    return out


def _canonical_sha256(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def feature_spec_sha256(spec: Mapping[str, Any]) -> str:
    """SHA-256 of a feature specification (``feature_engineering.features``) as canonical JSON.

    Policies record it (``spec["feature_spec_sha256"]``): two runs whose indicators or periods
    differ produce features with the same column names only by accident, so evaluation and
    deployment compare this fingerprint, not just the names.
    """
    return _canonical_sha256(FeatureSpec.parse(spec).to_params())


def scaler_sha256(scaler: Mapping[str, Any]) -> str:
    """SHA-256 of a scaler dict as canonical JSON (sorted keys, no spaces).

    Policies record it (``spec["scaler_sha256"]``) so that deployment can refuse to feed a
    policy features scaled differently from those it was trained on. It does not depend on
    the JSON file's indentation.
    """
    return _canonical_sha256(dict(scaler))


def data_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's column names, dtypes, index and values (row order matters).

    Uses pandas' stable row hashes, so the same table gives the same fingerprint whatever
    file format it was read from.
    """
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()
