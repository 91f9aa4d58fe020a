"""`PortfolioPanel`: the arrays a portfolio environment, agent or backtest reads.

Rows are dates; the first ``history`` rows of a panel are observation history only (a policy's
first decision is at row ``history``, which must be ``window - 1`` for the portfolio window).
Features are raw (unscaled) and causal: row t uses data up to t. Scaling belongs to the policy
(its scaler is fit on training rows and saved with its weights), so one panel serves training,
validation, the stitched test record and paper trading alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..env.portfolio import PortfolioInputError

__all__ = ["PortfolioPanel"]


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
