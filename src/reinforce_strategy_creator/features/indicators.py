"""Scale-free technical features, each defined on a fixed trailing window (docs/features.md).

* :func:`compute_features` turns a price table (``Open, High, Low, Close, Volume``) into
  unscaled ``feat_<name>`` columns on the same index; warm-up rows are NaN.
* :func:`max_lookback` says how many bars *before* ``t`` any feature at ``t`` reads.

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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import talib
from numpy.lib.stride_tricks import sliding_window_view

from ..params.features import FeatureSpec, Indicators
from .errors import PriceDataError

PRICE_COLUMNS = ("Open", "High", "Low", "Close", "Volume")
SPEC_PREFIX = "feature_engineering.features"


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
    return FeatureDef(f"feat_rsi_{p}", p + warm * (2 * p - 1), ("Close",), lambda c: _last(talib.RSI(c, p)))


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


_BUILDERS: dict[str, Callable[..., FeatureDef | list[FeatureDef]]] = {
    "logret": lambda p, cfg, warm: _logret(p),
    "sma_ratio": lambda p, cfg, warm: _sma_ratio(p),
    "ema_ratio": lambda p, cfg, warm: _ema_ratio(p, warm),
    "rsi": lambda p, cfg, warm: _rsi(p, warm),
    "atr_ratio": lambda p, cfg, warm: _atr_ratio(p, warm),
    "realized_vol": lambda p, cfg, warm: _realized_vol(p),
    "volume_z": lambda p, cfg, warm: _volume_z(p),
    "bbands": lambda p, cfg, warm: _bbands(p, float(cfg.nbdev)),
}
KNOWN_INDICATORS = tuple(Indicators.model_fields)


def feature_defs(spec: FeatureSpec | Mapping[str, Any], prefix: str = SPEC_PREFIX) -> list[FeatureDef]:
    """One :class:`FeatureDef` per output column of the feature specification, in column order.

    ``spec`` is ``feature_engineering.features``: a :class:`~.params.features.FeatureSpec`, or its
    mapping, validated here with errors naming ``prefix.<key>`` (docs/features.md).
    """
    spec = FeatureSpec.parse(spec, prefix)
    warm = spec.recursive_warmup
    defs: list[FeatureDef] = []
    for kind in KNOWN_INDICATORS:
        cfg = getattr(spec.indicators, kind)
        if cfg is None:
            continue
        if kind == "macd_hist":
            defs.append(_macd_hist(cfg.fast, cfg.slow, cfg.signal, warm))
            continue
        for p in cfg.periods:
            built = _BUILDERS[kind](int(p), cfg, warm)
            defs.extend(built if isinstance(built, list) else [built])
    return defs


def validate_spec(spec: FeatureSpec | Mapping[str, Any], prefix: str = SPEC_PREFIX) -> list[str]:
    """Raise :class:`~.params.base.ParameterError` naming the bad parameter; return the feature names."""
    return [d.name for d in feature_defs(spec, prefix)]


def feature_lookbacks(spec: FeatureSpec | Mapping[str, Any]) -> dict[str, int]:
    """Bars before ``t`` that each feature at ``t`` reads (its own warm-up length)."""
    return {d.name: d.lookback for d in feature_defs(spec)}


def max_lookback(spec: FeatureSpec | Mapping[str, Any]) -> int:
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
