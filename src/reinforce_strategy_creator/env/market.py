"""The market an environment trades: plain numpy arrays cut from a model-input table.

`MarketArrays.from_frame` is the single entry point from a model-input DataFrame (see
docs/contracts.md): the ``feat_*`` columns (already scaled, float32) become the observation
features, ``Open``/``Close`` (raw, float64) become fill and mark prices. Everything is checked
once here, so the hot loop in `core.py` never has to look for NaNs or bad prices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError


class MarketDataError(InputError):
    """The model-input table cannot be traded (missing column, NaN, non-positive price ...)."""


@dataclass(frozen=True)
class MarketArrays:
    features: np.ndarray  # (T, F) float32, scaled
    open: np.ndarray  # (T,) float64
    close: np.ndarray  # (T,) float64
    index: pd.DatetimeIndex
    feature_names: tuple[str, ...]
    #: Optional precomputed observation feature blocks (T, W*F) float32: row t = the scaled
    #: feature rows t-W+1..t flattened oldest first. A walk-forward record sets it so that each
    #: bar's observation is scaled by the scaler of the fold that decides there
    #: (``walk_forward.stitch``); None = built from ``features`` (``observation.build_windows``).
    obs_windows: np.ndarray | None = None

    @property
    def n_bars(self) -> int:
        return int(self.close.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @classmethod
    def from_frame(cls, df: pd.DataFrame, name: str = "model input table") -> MarketArrays:
        if not isinstance(df, pd.DataFrame):
            raise MarketDataError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
        if not isinstance(df.index, pd.DatetimeIndex):
            raise MarketDataError(
                f"{name}: the index must be a DatetimeIndex named 'date' "
                f"(got {type(df.index).__name__}); load the model_input_* Parquet datasets"
            )
        if not df.index.is_monotonic_increasing or not df.index.is_unique:
            raise MarketDataError(f"{name}: dates must be sorted and unique; sort and de-duplicate the table")
        feat_cols = [c for c in df.columns if str(c).startswith("feat_")]
        if not feat_cols:
            raise MarketDataError(
                f"{name}: no feature columns (names starting with 'feat_'); "
                "run the feature_engineering pipeline first"
            )
        for col in ("Open", "Close"):
            if col not in df.columns:
                raise MarketDataError(f"{name}: required price column {col!r} is missing")
        if len(df) < 2:
            raise MarketDataError(f"{name}: needs at least 2 rows, got {len(df)}")
        features = df[feat_cols].to_numpy(dtype=np.float32, copy=True)
        bad = ~np.isfinite(features)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise MarketDataError(
                f"{name}: column {feat_cols[c]!r} has a non-finite value at row {r} "
                f"({df.index[r].date()}); drop warm-up rows or fix the feature pipeline"
            )
        prices = {}
        for col in ("Open", "Close"):
            arr = df[col].to_numpy(dtype=np.float64, copy=True)
            bad = ~np.isfinite(arr) | (arr <= 0)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise MarketDataError(
                    f"{name}: column {col!r} must be finite and > 0, found {arr[r]!r} at row {r} "
                    f"({df.index[r].date()}); clean the price data in data_ingestion"
                )
            prices[col] = arr
        return cls(
            features=np.ascontiguousarray(features),
            open=prices["Open"],
            close=prices["Close"],
            index=pd.DatetimeIndex(df.index, name="date"),
            feature_names=tuple(str(c) for c in feat_cols),
        )

    def with_obs_windows(self, windows: np.ndarray) -> MarketArrays:
        """This market with each bar's observation feature block given explicitly."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[0] != self.n_bars or windows.shape[1] % self.n_features:
            raise MarketDataError(
                f"obs_windows: expected ({self.n_bars}, window x {self.n_features}) feature "
                f"blocks, got shape {windows.shape}"
            )
        if not np.isfinite(windows).all():
            raise MarketDataError(
                "obs_windows: non-finite values; every observed bar needs complete features"
            )
        return dataclasses.replace(self, obs_windows=windows)

    @classmethod
    def from_arrays(
        cls,
        features: np.ndarray,
        open_: np.ndarray,
        close: np.ndarray,
        index: pd.DatetimeIndex | None = None,
    ) -> MarketArrays:
        """Build from raw arrays (tests, synthetic markets); validated like `from_frame`."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim == 1:
            features = features[:, None]
        n = features.shape[0]
        if index is None:
            index = pd.bdate_range("2000-01-03", periods=n, name="date")
        df = pd.DataFrame(features, index=index, columns=[f"feat_{i}" for i in range(features.shape[1])])
        df["Open"] = np.asarray(open_, dtype=np.float64)
        df["Close"] = np.asarray(close, dtype=np.float64)
        return cls.from_frame(df, name="arrays")
