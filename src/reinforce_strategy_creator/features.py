"""Scale-free technical features, chronological splits and a JSON-persisted scaler.

What
----
* :func:`compute_features` turns a price table (``Open, High, Low, Close, Volume``) into
  unscaled ``feat_<name>`` columns on the same index; warm-up rows are NaN.
* :func:`max_lookback` says how many bars *before* ``t`` any feature at ``t`` reads.
* :func:`plan_splits` cuts the rows into train / validation / test by date, drops the
  indicator warm-up and an embargo at the start of validation and test.
* :func:`fit_scaler`, :func:`scaler_to_dict`, :func:`scaler_from_dict` and
  :func:`scale_features` fit a scikit-learn scaler on train only and persist it as plain
  JSON (no pickle: loading it cannot execute code).

Why the indicators are evaluated on trailing windows
----------------------------------------------------
TA-Lib computes every indicator. Run over a whole series, TA-Lib's recursive indicators
(EMA, RSI, MACD, ATR) remember the entire history (their "unstable period"), and even its
finite-window ones (SMA, STDDEV, BBANDS) keep running sums whose rounding depends on where
the series starts. A feature at bar ``t`` would then differ, in the last bits or more,
between a backtest over 20 years and a live run over a few months of history.

So each feature is *defined* on a fixed trailing window: the value at ``t`` is the last
output of the TA-Lib function applied to bars ``t - lookback … t`` only. Recursive
indicators get ``recursive_warmup × period`` extra bars inside that window (``period`` in
EMA terms: ``2n - 1`` for Wilder-smoothed RSI and ATR) so that their seed has decayed
(residual weight about ``exp(-2 × recursive_warmup)``). Two properties
follow by construction, and are tested bit for bit:

* causality: changing bars after ``t`` never changes features at or before ``t``;
* finite memory: changing bars before ``t - max_lookback(spec)`` never changes features at
  ``t``, so ``max_lookback + 1`` bars of live history reproduce the backtest exactly.

TA-Lib offers no windowed mode, so the small driver :func:`_trailing` (a loop of one TA-Lib
call per bar over ``numpy`` sliding-window views, about 2 µs per call) is hand-written.
Everything else (indicator maths, scaling) is TA-Lib, numpy and scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import talib
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.preprocessing import RobustScaler, StandardScaler

PRICE_COLUMNS = ("Open", "High", "Low", "Close", "Volume")
FEATURE_PREFIX = "feat_"
SPLIT_NAMES = ("train", "validation", "test")
SCALER_KINDS = ("standard", "robust")
SPEC_PREFIX = "feature_engineering.features"


# --------------------------------------------------------------------------- errors
class FeatureEngineeringError(ValueError):
    """Base class: bad input to feature engineering (a ``ValueError``)."""


class FeatureSpecError(FeatureEngineeringError):
    """The feature specification (``feature_engineering.features``) is invalid."""


class PriceDataError(FeatureEngineeringError):
    """The price table cannot be turned into features."""


class SplitConfigError(FeatureEngineeringError):
    """Split dates, embargo or minimum sizes are invalid, or a split is too short."""


class ScalerFormatError(FeatureEngineeringError):
    """A scaler JSON dict is malformed or does not match the features."""


# --------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class FeatureDef:
    """One output column: its name, the bars before ``t`` it reads, and how."""

    name: str
    lookback: int
    inputs: tuple[str, ...]  # price columns handed to ``last_value``, in order
    last_value: Callable[..., float]  # trailing windows (length lookback+1) -> value at t


def _last(values: np.ndarray) -> float:
    return float(values[-1])


def _logret(h: int) -> FeatureDef:
    return FeatureDef(f"feat_logret_{h}", h, ("Close",), lambda c: math.log(c[-1] / c[0]))


def _sma_ratio(p: int) -> FeatureDef:
    return FeatureDef(
        f"feat_sma_ratio_{p}", p - 1, ("Close",), lambda c: c[-1] / _last(talib.SMA(c, p)) - 1.0
    )


def _ema_ratio(p: int, warm: int) -> FeatureDef:
    return FeatureDef(
        f"feat_ema_ratio_{p}",
        p - 1 + warm * p,
        ("Close",),
        lambda c: c[-1] / _last(talib.EMA(c, p)) - 1.0,
    )


def _rsi(p: int, warm: int) -> FeatureDef:
    # Wilder smoothing (alpha = 1/p) decays like an EMA of period 2p - 1.
    return FeatureDef(
        f"feat_rsi_{p}", p + warm * (2 * p - 1), ("Close",), lambda c: _last(talib.RSI(c, p))
    )


def _macd_hist(fast: int, slow: int, signal: int, warm: int) -> FeatureDef:
    def value(c: np.ndarray) -> float:
        _, _, hist = talib.MACD(c, fastperiod=fast, slowperiod=slow, signalperiod=signal)
        return _last(hist) / c[-1]

    return FeatureDef(
        f"feat_macd_hist_{fast}_{slow}_{signal}", slow + signal - 2 + warm * slow, ("Close",), value
    )


def _bbands(p: int, nbdev: float) -> list[FeatureDef]:
    def bands(c: np.ndarray) -> tuple[float, float, float]:
        up, mid, lo = talib.BBANDS(c, timeperiod=p, nbdevup=nbdev, nbdevdn=nbdev, matype=0)
        return _last(up), _last(mid), _last(lo)

    def pctb(c: np.ndarray) -> float:
        up, _, lo = bands(c)
        # A flat window has zero-width bands; the close then sits on the middle band.
        return 0.5 if up == lo else (c[-1] - lo) / (up - lo)

    def width(c: np.ndarray) -> float:
        up, mid, lo = bands(c)
        return (up - lo) / mid

    return [
        FeatureDef(f"feat_bb_pctb_{p}", p - 1, ("Close",), pctb),
        FeatureDef(f"feat_bb_width_{p}", p - 1, ("Close",), width),
    ]


def _atr_ratio(p: int, warm: int) -> FeatureDef:
    return FeatureDef(
        f"feat_atr_ratio_{p}",
        p + warm * (2 * p - 1),  # Wilder smoothing, like an EMA of period 2p - 1
        ("High", "Low", "Close"),
        lambda h, lo, c: _last(talib.ATR(h, lo, c, p)) / c[-1],
    )


def _realized_vol(p: int) -> FeatureDef:
    def value(c: np.ndarray) -> float:
        return _last(talib.STDDEV(np.log(c[1:] / c[:-1]), timeperiod=p, nbdev=1.0))

    return FeatureDef(f"feat_realized_vol_{p}", p, ("Close",), value)


def _volume_z(p: int) -> FeatureDef:
    def value(v: np.ndarray) -> float:
        lv = np.log1p(v)
        sd = _last(talib.STDDEV(lv, timeperiod=p, nbdev=1.0))
        # A window of identical volumes has no spread: today's volume is exactly average.
        return 0.0 if sd == 0.0 else (lv[-1] - _last(talib.SMA(lv, p))) / sd

    return FeatureDef(f"feat_volume_z_{p}", p - 1, ("Volume",), value)


# indicator name -> (allowed keys, minimum period)
_PERIOD_INDICATORS: dict[str, int] = {
    "logret": 1,
    "sma_ratio": 2,
    "ema_ratio": 2,
    "rsi": 2,
    "atr_ratio": 1,
    "realized_vol": 2,
    "volume_z": 2,
    "bbands": 2,
}
KNOWN_INDICATORS = (*_PERIOD_INDICATORS, "macd_hist")


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _check_int(value: Any, where: str, minimum: int) -> int:
    if not _is_int(value):
        raise FeatureSpecError(f"{where} must be an integer, got {value!r}.")
    if value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise FeatureSpecError(f"{where} must be {what}, got {value}. Fix it in the parameters.")
    return int(value)


def _check_keys(cfg: Any, allowed: set[str], required: set[str], where: str) -> Mapping:
    if not isinstance(cfg, Mapping):
        raise FeatureSpecError(f"{where} must be a mapping, got {type(cfg).__name__}.")
    unknown = set(cfg) - allowed
    if unknown:
        raise FeatureSpecError(
            f"{where} has unknown key(s) {sorted(unknown)}; allowed keys are {sorted(allowed)}."
        )
    missing = required - set(cfg)
    if missing:
        raise FeatureSpecError(f"{where} is missing key(s) {sorted(missing)}.")
    return cfg


def feature_defs(spec: Mapping[str, Any], prefix: str = SPEC_PREFIX) -> list[FeatureDef]:
    """Validate ``spec`` and expand it into one :class:`FeatureDef` per output column.

    ``spec`` is ``{"recursive_warmup": int >= 0, "indicators": {name: {...}}}``; see
    ``docs/features.md``. Errors name the dotted parameter, prefixed by ``prefix``.
    """
    _check_keys(spec, {"recursive_warmup", "indicators"}, {"indicators"}, prefix)
    warm = _check_int(spec.get("recursive_warmup", 3), f"{prefix}.recursive_warmup", 0)
    indicators = spec["indicators"]
    where = f"{prefix}.indicators"
    if not isinstance(indicators, Mapping) or not indicators:
        raise FeatureSpecError(f"{where} must be a non-empty mapping of indicator -> settings.")
    defs: list[FeatureDef] = []
    for kind, cfg in indicators.items():
        w = f"{where}.{kind}"
        if kind == "macd_hist":
            _check_keys(cfg, {"fast", "slow", "signal"}, {"fast", "slow", "signal"}, w)
            fast = _check_int(cfg["fast"], f"{w}.fast", 2)
            slow = _check_int(cfg["slow"], f"{w}.slow", 2)
            signal = _check_int(cfg["signal"], f"{w}.signal", 1)
            if fast >= slow:
                raise FeatureSpecError(f"{w}.fast ({fast}) must be smaller than {w}.slow ({slow}).")
            defs.append(_macd_hist(fast, slow, signal, warm))
            continue
        if kind not in _PERIOD_INDICATORS:
            raise FeatureSpecError(
                f"{w}: unknown indicator {kind!r}. Known indicators: {', '.join(KNOWN_INDICATORS)}."
            )
        allowed = {"periods", "nbdev"} if kind == "bbands" else {"periods"}
        _check_keys(cfg, allowed, {"periods"}, w)
        periods = cfg["periods"]
        if isinstance(periods, (str, bytes)) or not isinstance(periods, Sequence) or not periods:
            raise FeatureSpecError(f"{w}.periods must be a non-empty list of integers.")
        if len(set(periods)) != len(periods):
            raise FeatureSpecError(f"{w}.periods has duplicates: {list(periods)}.")
        nbdev = cfg.get("nbdev", 2.0)
        if kind == "bbands" and (
            isinstance(nbdev, bool) or not isinstance(nbdev, (int, float)) or not nbdev > 0
        ):
            raise FeatureSpecError(f"{w}.nbdev must be a positive number, got {nbdev!r}.")
        for i, p in enumerate(periods):
            p = _check_int(p, f"{w}.periods[{i}]", _PERIOD_INDICATORS[kind])
            if kind == "logret":
                defs.append(_logret(p))
            elif kind == "sma_ratio":
                defs.append(_sma_ratio(p))
            elif kind == "ema_ratio":
                defs.append(_ema_ratio(p, warm))
            elif kind == "rsi":
                defs.append(_rsi(p, warm))
            elif kind == "atr_ratio":
                defs.append(_atr_ratio(p, warm))
            elif kind == "realized_vol":
                defs.append(_realized_vol(p))
            elif kind == "volume_z":
                defs.append(_volume_z(p))
            else:
                defs.extend(_bbands(p, float(nbdev)))
    return defs


def validate_spec(spec: Mapping[str, Any], prefix: str = SPEC_PREFIX) -> list[str]:
    """Raise :class:`FeatureSpecError` naming the bad parameter; return the feature names."""
    return [d.name for d in feature_defs(spec, prefix)]


def feature_lookbacks(spec: Mapping[str, Any]) -> dict[str, int]:
    """Bars before ``t`` that each feature at ``t`` reads (its own warm-up length)."""
    return {d.name: d.lookback for d in feature_defs(spec)}


def max_lookback(spec: Mapping[str, Any]) -> int:
    """The longest look-back of any feature: rows ``0 … max_lookback-1`` are warm-up, and
    features at ``t`` depend on bars ``t - max_lookback … t`` and on nothing else."""
    return max(feature_lookbacks(spec).values())


# --------------------------------------------------------------------------- prices
def validate_prices(prices: pd.DataFrame, source: str = "primary_prices") -> None:
    """Check the price table follows the ``primary_prices`` contract; name what is wrong."""
    if not isinstance(prices, pd.DataFrame):
        raise PriceDataError(f"{source} must be a pandas DataFrame, got {type(prices).__name__}.")
    missing = [c for c in PRICE_COLUMNS if c not in prices.columns]
    if missing:
        raise PriceDataError(
            f"{source} is missing column(s) {missing}; it needs {list(PRICE_COLUMNS)}. "
            "Re-run the data_ingestion pipeline."
        )
    idx = prices.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise PriceDataError(f"{source} must have a DatetimeIndex named 'date'.")
    if not idx.is_unique or not idx.is_monotonic_increasing:
        dup = idx[idx.duplicated()] if not idx.is_unique else idx[1:][np.diff(idx.asi8) < 0]
        raise PriceDataError(
            f"{source} index must be sorted and unique; first offending date {dup[0].date()}."
        )
    for col in PRICE_COLUMNS:
        values = prices[col]
        if not pd.api.types.is_numeric_dtype(values):
            raise PriceDataError(f"{source} column {col!r} must be numeric, got {values.dtype}.")
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(arr) | ((arr < 0) if col == "Volume" else (arr <= 0))
        if bad.any():
            row = int(np.argmax(bad))
            need = "finite and >= 0" if col == "Volume" else "finite and > 0"
            raise PriceDataError(
                f"{source} column {col!r} row {row} ({idx[row].date()}) is {arr[row]!r}; "
                f"values must be {need}. Fix or drop that row in data_ingestion."
            )
    hl = prices["High"].to_numpy(np.float64) < prices["Low"].to_numpy(np.float64)
    if hl.any():
        row = int(np.argmax(hl))
        raise PriceDataError(
            f"{source} row {row} ({idx[row].date()}) has High < Low; fix that row in data_ingestion."
        )


# --------------------------------------------------------------------------- features
def _trailing(fd: FeatureDef, arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Evaluate ``fd`` at every bar on its own trailing window; NaN during warm-up."""
    n = len(arrays[0])
    length = fd.lookback + 1
    out = np.full(n, np.nan)
    if n < length:
        return out
    views = [sliding_window_view(a, length) for a in arrays]
    fn = fd.last_value
    out[fd.lookback :] = [fn(*ws) for ws in zip(*views, strict=True)]
    return out


def compute_features(prices: pd.DataFrame, spec: Mapping[str, Any]) -> pd.DataFrame:
    """Unscaled ``feat_*`` columns on ``prices.index``; each feature is NaN for its first
    ``lookback`` rows. Row ``t`` depends only on rows ``t - max_lookback(spec) … t``."""
    defs = feature_defs(spec)
    validate_prices(prices)
    cols = {c: np.ascontiguousarray(prices[c].to_numpy(dtype=np.float64)) for c in PRICE_COLUMNS}
    data = {fd.name: _trailing(fd, [cols[c] for c in fd.inputs]) for fd in defs}
    out = pd.DataFrame(data, index=prices.index.copy())
    for fd in defs:  # after warm-up every value must be a real number
        bad = ~np.isfinite(out[fd.name].to_numpy()[fd.lookback :])
        if bad.any():
            row = fd.lookback + int(np.argmax(bad))
            raise PriceDataError(
                f"feature {fd.name!r} is not finite at row {row} ({out.index[row].date()}); "
                "check the prices around that date in primary_prices."
            )
    return out


# --------------------------------------------------------------------------- splits
def _parse_date(value: Any, where: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise SplitConfigError(f"{where} = {value!r} is not a date (use YYYY-MM-DD).") from exc
    if ts is pd.NaT or ts.tzinfo is not None:
        raise SplitConfigError(f"{where} = {value!r} must be a tz-naive date (YYYY-MM-DD).")
    return ts


def validate_split_dates(
    splits: Mapping[str, Any], prefix: str = "feature_engineering.splits"
) -> dict[str, tuple[pd.Timestamp | None, pd.Timestamp | None]]:
    """Parse ``{train|validation|test: {start, end}}``: every bound is required except
    ``train.start`` and ``test.end`` (null = open); the splits must be in order and disjoint."""
    if not isinstance(splits, Mapping) or set(splits) != set(SPLIT_NAMES):
        got = sorted(splits) if isinstance(splits, Mapping) else type(splits).__name__
        raise SplitConfigError(f"{prefix} must have exactly the keys {list(SPLIT_NAMES)}, got {got}.")
    bounds: dict[str, tuple[pd.Timestamp | None, pd.Timestamp | None]] = {}
    for name in SPLIT_NAMES:
        cfg = splits[name]
        if not isinstance(cfg, Mapping) or set(cfg) - {"start", "end"}:
            raise SplitConfigError(f"{prefix}.{name} must be a mapping with keys start and end.")
        start = _parse_date(cfg.get("start"), f"{prefix}.{name}.start")
        end = _parse_date(cfg.get("end"), f"{prefix}.{name}.end")
        if start is None and name != "train":
            raise SplitConfigError(f"{prefix}.{name}.start is required.")
        if end is None and name != "test":
            raise SplitConfigError(f"{prefix}.{name}.end is required.")
        if start is not None and end is not None and start > end:
            raise SplitConfigError(
                f"{prefix}.{name}.start ({start.date()}) is after {prefix}.{name}.end ({end.date()})."
            )
        bounds[name] = (start, end)
    for prev, nxt in zip(SPLIT_NAMES, SPLIT_NAMES[1:], strict=False):
        prev_end, next_start = bounds[prev][1], bounds[nxt][0]
        if not prev_end < next_start:
            raise SplitConfigError(
                f"{prefix}.{nxt}.start ({next_start.date()}) must come after "
                f"{prefix}.{prev}.end ({prev_end.date()}): splits overlap or are out of order."
            )
    return bounds


def resolve_embargo(
    embargo: Any, lookback: int, where: str = "feature_engineering.embargo_bars"
) -> int:
    """``"auto"`` means ``max_lookback``; an explicit integer must be at least that."""
    if embargo == "auto":
        return lookback
    if not _is_int(embargo) or embargo < lookback:
        raise SplitConfigError(
            f"{where} = {embargo!r} must be 'auto' or an integer >= the longest feature "
            f"look-back ({lookback} bars), otherwise validation/test features would read "
            "training bars."
        )
    return int(embargo)


def plan_splits(
    index: pd.DatetimeIndex,
    bounds: Mapping[str, tuple[pd.Timestamp | None, pd.Timestamp | None]],
    *,
    lookback: int,
    embargo_bars: int,
    min_split_rows: int,
) -> dict[str, dict[str, Any]]:
    """Row positions of each split: rows in ``[start, end]`` whose features are complete
    (position >= ``lookback``), minus the first ``embargo_bars`` rows of validation and test.

    Returns ``{split: {"positions": ndarray, "rows", "start", "end", "embargo_rows",
    "configured_start", "configured_end"}}``; raises :class:`SplitConfigError` naming the
    split and its dates when one has fewer than ``min_split_rows`` rows.
    """
    if not _is_int(min_split_rows) or min_split_rows < 1:
        raise SplitConfigError(
            f"feature_engineering.min_split_rows must be a positive integer, got {min_split_rows!r}."
        )
    pos = np.arange(len(index))
    plan: dict[str, dict[str, Any]] = {}
    for name in SPLIT_NAMES:
        start, end = bounds[name]
        mask = pos >= lookback
        if start is not None:
            mask &= index >= start
        if end is not None:
            mask &= index <= end
        chosen = pos[mask]
        embargo = 0 if name == "train" else min(embargo_bars, len(chosen))
        chosen = chosen[embargo:]
        span = f"{start.date() if start is not None else 'data start'} .. " + (
            f"{end.date() if end is not None else 'data end'}"
        )
        if len(chosen) < min_split_rows:
            raise SplitConfigError(
                f"split {name!r} ({span}) has {len(chosen)} usable rows after dropping "
                f"the first {lookback} warm-up bars of the data"
                + ("" if name == "train" else f" and an embargo of {embargo_bars} bars")
                + "; "
                f"feature_engineering.min_split_rows is {min_split_rows}. Widen "
                f"feature_engineering.splits.{name} or shorten the indicator periods."
            )
        plan[name] = {
            "positions": chosen,
            "rows": len(chosen),
            "start": index[chosen[0]].date().isoformat(),
            "end": index[chosen[-1]].date().isoformat(),
            "embargo_rows": embargo,
            "configured_start": None if start is None else start.date().isoformat(),
            "configured_end": None if end is None else end.date().isoformat(),
        }
    return plan


def check_window(window: Any, plan: Mapping[str, Mapping[str, Any]]) -> int:
    """The environment needs ``window`` rows of history plus one bar to trade in every split."""
    if not _is_int(window) or window < 1:
        raise SplitConfigError(f"environment.window must be a positive integer, got {window!r}.")
    shortest = min(SPLIT_NAMES, key=lambda s: plan[s]["rows"])
    rows = plan[shortest]["rows"]
    if window >= rows:
        raise SplitConfigError(
            f"environment.window = {window} is not shorter than the shortest split {shortest!r} "
            f"({plan[shortest]['start']} .. {plan[shortest]['end']}, {rows} rows): the agent could "
            "not take a single step. Lower environment.window or widen "
            f"feature_engineering.splits.{shortest}."
        )
    return int(window)


# --------------------------------------------------------------------------- scaling
def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The feature columns, in order: exactly those whose name starts with ``feat_``."""
    return [c for c in frame.columns if str(c).startswith(FEATURE_PREFIX)]


def fit_scaler(train_features: pd.DataFrame, kind: str) -> StandardScaler | RobustScaler:
    """Fit a scikit-learn scaler on the training feature rows only (numpy, float64)."""
    if kind not in SCALER_KINDS:
        raise ScalerFormatError(
            f"feature_engineering.scaler = {kind!r}; use one of {list(SCALER_KINDS)}."
        )
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
    return _canonical_sha256(dict(spec))


def scaler_sha256(scaler: Mapping[str, Any]) -> str:
    """SHA-256 of a scaler dict as canonical JSON (sorted keys, no spaces).

    Policies record it (``spec["scaler_sha256"]``) so that deployment can refuse to feed a
    policy features scaled differently from those it was trained on. It does not depend on
    the JSON file's indentation.
    """
    return _canonical_sha256(dict(scaler))

