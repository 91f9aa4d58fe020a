"""A fold's model-input tables: its own scaler, fit on its training rows only.

The features are computed once over the whole history (they are causal: row t reads bars up to t
only, ``features.compute_features``). Each fold then fits the scaler on its training rows and
scales three tables with it:

* ``train``: the training window's rows;
* ``validation`` and ``test``: the window's rows preceded by ``history_rows`` = W − 1 rows of
  history, so that the first observation (W rows of features) ends on the window's first bar and
  the first decision is taken there. No bar of a window is dropped for warm-up.

The history rows are read, never traded: a replay's first decision is at row W − 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..features import build_model_input, feature_columns, fit_scaler, scaler_to_dict
from .folds import Fold, Window

__all__ = ["FoldTables", "fold_tables"]


@dataclass(frozen=True)
class FoldTables:
    """The fold's scaler (JSON dict) and its scaled model-input tables."""

    fold: str
    scaler: dict[str, Any]
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame | None
    history_rows: int


def _table(features: pd.DataFrame, prices: pd.DataFrame, window: Window, history: int, scaler: dict) -> Any:
    first = window.first_row - history
    if first < 0:
        raise ValueError(
            f"window {window.start.date()}..{window.end.date()} needs {history} rows of history before it, "
            f"only {window.first_row} exist; lower environment.window or start the folds later"
        )
    rows = features.iloc[first : window.stop_row]
    return build_model_input(rows, prices, scaler)


def fold_tables(
    features: pd.DataFrame, prices: pd.DataFrame, fold: Fold, window: int, scaler_kind: str
) -> FoldTables:
    """The tables of ``fold`` (:class:`~.folds.Fold`) from the unscaled ``feat_*`` table over the
    whole history and the OHLCV prices on the same index; ``window`` is ``environment.window``."""
    if not features.index.equals(prices.index):
        raise ValueError("features and prices must share one index (the whole price history)")
    names = feature_columns(features)
    train_rows = features.iloc[fold.train.rows][names]
    scaler = scaler_to_dict(
        fit_scaler(train_rows, scaler_kind),
        names,
        fit_rows=len(train_rows),
        fit_start=train_rows.index[0],
        fit_end=train_rows.index[-1],
    )
    history = window - 1
    return FoldTables(
        fold=fold.name,
        scaler=scaler,
        train=build_model_input(features.iloc[fold.train.rows], prices, scaler),
        validation=_table(features, prices, fold.validation, history, scaler),
        test=None if fold.test is None else _table(features, prices, fold.test, history, scaler),
        history_rows=history,
    )
