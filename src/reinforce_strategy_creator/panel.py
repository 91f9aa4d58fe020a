"""A universe's prices and raw causal features as arrays (:class:`PortfolioPanel`), and how they
are built (:func:`portfolio_features`) and scaled (:func:`fit_feature_scaler`).

Rows are dates; the first ``history`` rows of a panel are observation history only (a policy's
first decision is at row ``history``, which must be ``window - 1`` for the portfolio window).
Features are raw (unscaled) and causal: row t uses data up to t. Scaling belongs to the policy
(its scaler is fit on training rows and saved with its weights), so one panel serves training,
validation, the stitched test record and paper trading alike.

Each ticker's features are the single-asset features of :mod:`.features.indicators` (the same
:class:`~.features.indicators.FeatureDef` trailing windows, so the same values bit for bit),
computed on that ticker's own bars only: nothing is filled, a ticker is NaN before its first
bar and for the first ``lookback`` bars of each feature after it. Which features the universe's
fields can feed is decided by :func:`.universe.features_for_fields` (close-only data leaves out
ATR and volume features with one warning, or raises when they were asked for by name).
:func:`fit_feature_scaler` fits the mean and standard deviation a portfolio policy carries (and
applies in its forward pass) on the training rows only, all listed tickers pooled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .features.indicators import FeatureDef, _trailing, feature_defs
from .universe import Universe, features_for_fields

__all__ = [
    "PortfolioInputError",
    "PortfolioPanel",
    "feature_warmup",
    "first_feature_rows",
    "fit_feature_scaler",
    "portfolio_feature_defs",
    "portfolio_features",
]


class PortfolioInputError(InputError):
    """Bad portfolio input (prices, features or target weights); names what and fixes."""


@dataclass(frozen=True)
class PortfolioPanel:
    """Closes (T, N) float64 (NaN before a ticker's first bar), raw features (T, N, F) float32,
    the N tickers, the T dates and the F feature names."""

    close: np.ndarray
    features: np.ndarray
    tickers: tuple[str, ...]
    dates: pd.DatetimeIndex
    feature_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        close = np.asarray(self.close, dtype=np.float64)
        feats = np.asarray(self.features, dtype=np.float32)
        object.__setattr__(self, "close", close)
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "tickers", tuple(str(t) for t in self.tickers))
        object.__setattr__(self, "dates", pd.DatetimeIndex(self.dates))
        T = len(self.dates)
        if close.ndim != 2 or close.shape[0] != T or close.shape[1] != len(self.tickers):
            raise PortfolioInputError(
                f"panel close must have shape ({T} dates, {len(self.tickers)} tickers), got {close.shape}"
            )
        if feats.ndim != 3 or feats.shape[:2] != close.shape:
            raise PortfolioInputError(
                f"panel features must have shape ({T}, {len(self.tickers)}, F), got {feats.shape}"
            )
        if self.feature_names and len(self.feature_names) != feats.shape[2]:
            raise PortfolioInputError(
                f"panel has {feats.shape[2]} feature columns but {len(self.feature_names)} feature names"
            )

    @property
    def n_bars(self) -> int:
        return int(self.close.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.close.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[2])

    def rows(self, start: int, stop: int) -> PortfolioPanel:
        """Rows ``start:stop`` (positions) as a panel."""
        if not (0 <= start < stop <= self.n_bars):
            raise PortfolioInputError(f"panel rows {start}:{stop} are outside 0:{self.n_bars}")
        return PortfolioPanel(
            self.close[start:stop],
            self.features[start:stop],
            self.tickers,
            self.dates[start:stop],
            self.feature_names,
        )

    def window(self, first_decision: int, stop: int, history: int) -> PortfolioPanel:
        """The panel a replay over decisions ``first_decision .. stop - 2`` needs: ``history`` rows
        before the first decision, then through row ``stop - 1`` (the last fill and mark)."""
        if first_decision - history < 0:
            raise PortfolioInputError(
                f"the window needs {history} history rows before row {first_decision} "
                f"({self.dates[first_decision].date()}), but the panel starts "
                f"{first_decision} rows earlier; start later or use a smaller portfolio window"
            )
        return self.rows(first_decision - history, stop)

    def select(self, tickers: Sequence[str]) -> PortfolioPanel:
        """The panel restricted to ``tickers`` (in that order); unknown tickers are an error."""
        missing = [t for t in tickers if t not in self.tickers]
        if missing:
            raise PortfolioInputError(f"tickers {missing} are not in the panel ({list(self.tickers)})")
        idx = [self.tickers.index(t) for t in tickers]
        return PortfolioPanel(
            self.close[:, idx], self.features[:, idx], tuple(tickers), self.dates, self.feature_names
        )


def _fields_of(data: Universe | pd.DataFrame) -> tuple[str, ...]:
    return tuple(data.fields) if isinstance(data, Universe) else ("Close",)


def portfolio_feature_defs(
    spec: Any, fields: Iterable[str] = ("Close",), *, requested: Iterable[str] = (), source: str = "universe"
) -> list[FeatureDef]:
    """The features of ``spec`` (``feature_engineering.features``) that ``fields`` can feed, in
    the spec's column order (:func:`..universe.features_for_fields`: one warning for those left
    out, :class:`~..universe.MissingFieldsError` for one asked for by name in ``requested``)."""
    selection = features_for_fields(spec, tuple(fields), requested=requested, source=source)
    kept = set(selection.kept)
    defs = [d for d in feature_defs(spec) if d.name in kept]
    if not defs:
        raise PortfolioInputError(
            f"{source}: no feature of the feature spec can be computed from the fields {sorted(fields)}; "
            "add close-based indicators (logret, realized_vol, ...) to feature_engineering.features."
        )
    return defs


def feature_warmup(spec: Any, fields: Iterable[str] = ("Close",)) -> int:
    """``max_lookback`` of the features ``fields`` can feed (no warning): a ticker's features are
    all finite from its ``feature_warmup``-th own bar (0-based) on, and a feature at row t reads
    that ticker's bars ``t - feature_warmup .. t`` and nothing else."""
    have = set(fields)
    return max(
        (d.lookback for d in feature_defs(spec) if set(d.inputs) <= have),
        default=0,
    )


def _close_frame(data: Universe | pd.DataFrame) -> pd.DataFrame:
    if isinstance(data, Universe):
        return data.field("Close")
    if not isinstance(data, pd.DataFrame) or data.shape[1] == 0:
        raise PortfolioInputError(
            "portfolio_features needs a Universe (universe.read_universe_csv) or a date x ticker "
            f"DataFrame of closes, got {type(data).__name__}"
        )
    if not isinstance(data.index, pd.DatetimeIndex):
        raise PortfolioInputError(
            "the close table must have a DatetimeIndex (dates as rows, tickers as columns)"
        )
    return data


def _own_bars(data: Universe | pd.DataFrame, close: pd.DataFrame, ticker: str, j: int) -> pd.DataFrame:
    """The ticker's own bars (rows where it has a close), fields as columns."""
    if isinstance(data, Universe):
        return data.ticker(ticker)
    col = close.iloc[:, j]
    return pd.DataFrame({"Close": col[col.notna()].astype("float64")})


def portfolio_features(
    universe_or_close: Universe | pd.DataFrame,
    spec: Mapping[str, Any] | Any,
    *,
    requested: Sequence[str] = (),
) -> PortfolioPanel:
    """The portfolio panel of a universe: closes (T, N) float64 and raw features (T, N, F) float32.

    ``universe_or_close``: a :class:`~..universe.Universe` (OHLCV or close-only) or a date x ticker
    DataFrame of closes (close-only; NaN where a ticker has no bar). ``spec``: the
    ``feature_engineering.features`` parameters (mapping or ``FeatureSpec``). ``requested``:
    feature names the user asked for by name (an error if the fields cannot feed one).

    Row t of ticker j's features is computed from j's own bars up to row t (the
    :func:`~..features.indicators.compute_features` trailing windows); NaN where j has no bar
    (before its listing, and on any date inside its range it lacks) and during each feature's
    warm-up. :func:`feature_warmup` and :func:`first_feature_rows` say where features start.
    """
    data = universe_or_close
    close = _close_frame(data)
    source = data.source if isinstance(data, Universe) else "close table"
    tickers = tuple(str(t) for t in close.columns)
    defs = portfolio_feature_defs(spec, _fields_of(data), requested=requested, source=source)
    T, N, F = len(close), len(tickers), len(defs)
    feats = np.full((T, N, F), np.nan, dtype=np.float32)
    for j, ticker in enumerate(tickers):
        bars = _own_bars(data, close, ticker, j)
        if bars.empty:
            raise PortfolioInputError(f"{source}: ticker {ticker!r} has no close; drop it from the universe")
        closes = bars["Close"].to_numpy(dtype=np.float64)
        if not (np.isfinite(closes).all() and (closes > 0).all()):
            raise PortfolioInputError(f"{source}: ticker {ticker!r} has a non-positive or infinite close")
        arrays = {c: np.ascontiguousarray(bars[c].to_numpy(dtype=np.float64)) for c in bars.columns}
        rows = close.index.get_indexer(bars.index)
        for k, fd in enumerate(defs):
            values = _trailing(fd, [arrays[c] for c in fd.inputs])
            bad = ~np.isfinite(values[fd.lookback :])
            if bad.any():
                i = fd.lookback + int(np.argmax(bad))
                raise PortfolioInputError(
                    f"{source}: feature {fd.name!r} of ticker {ticker!r} is not finite on "
                    f"{bars.index[i].date()}; check that ticker's prices around that date."
                )
            feats[rows, j, k] = values
    return PortfolioPanel(
        close=close.to_numpy(dtype=np.float64),
        features=feats,
        tickers=tickers,
        dates=pd.DatetimeIndex(close.index),
        feature_names=tuple(d.name for d in defs),
    )


def first_feature_rows(panel: PortfolioPanel) -> np.ndarray:
    """(N,) int: per ticker, the first row from which every feature is finite on every row where
    the ticker has a close (``n_bars`` if never): its listing row plus the warm-up, on its own bars."""
    ok = np.isfinite(panel.features).all(axis=2) | ~np.isfinite(panel.close)
    listed = np.isfinite(panel.close)
    out = np.full(panel.n_assets, panel.n_bars, dtype=np.int64)
    for j in range(panel.n_assets):
        bad = np.flatnonzero(~ok[:, j])
        start = (int(bad[-1]) + 1) if len(bad) else 0
        after = np.flatnonzero(listed[start:, j])
        if len(after):
            out[j] = start + int(after[0])
    return out


def _row_index(rows, T: int) -> np.ndarray:
    try:
        idx = np.arange(T)[rows]
    except (IndexError, TypeError, ValueError) as err:
        raise PortfolioInputError(
            f"fit_feature_scaler: rows={rows!r} do not select rows of a panel of {T} rows ({err})"
        ) from None
    idx = np.atleast_1d(idx)
    if idx.size == 0:
        raise PortfolioInputError("fit_feature_scaler: rows select no row; give the training rows")
    return idx


def fit_feature_scaler(panel: PortfolioPanel, rows) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (population) of each feature over ``rows`` of ``panel`` (the
    training rows only: a slice, range, index array or boolean mask), all listed tickers pooled,
    finite values only. Returns two (F,) float32 arrays; a constant feature gets std 1 (as
    scikit-learn's ``StandardScaler``). A feature with no finite value on those rows (all in
    warm-up, or no ticker listed) is an error naming it."""
    idx = _row_index(rows, panel.n_bars)
    x = panel.features[idx].astype(np.float64)  # (R, N, F)
    listed = np.isfinite(panel.close[idx])  # (R, N)
    pooled = x[listed]  # (M, F)
    finite = np.isfinite(pooled)
    count = finite.sum(axis=0)
    empty = [panel.feature_names[k] if panel.feature_names else f"#{k}" for k in np.flatnonzero(count == 0)]
    if empty:
        first, last = panel.dates[idx.min()].date(), panel.dates[idx.max()].date()
        raise PortfolioInputError(
            f"fit_feature_scaler: feature(s) {empty} have no finite value on the training rows "
            f"{first} .. {last} (every listed ticker is still in the feature's warm-up, or none is "
            "listed); start the training rows later or use shorter look-backs."
        )
    vals = np.where(finite, pooled, 0.0)
    mean = vals.sum(axis=0) / count
    var = (np.where(finite, pooled - mean, 0.0) ** 2).sum(axis=0) / count
    std = np.sqrt(var)
    std = np.where(std > 0, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)
