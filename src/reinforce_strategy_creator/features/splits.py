"""Chronological train / validation / test splits with warm-up and embargo (docs/features.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..params.base import ParameterError
from ..params.features import Splits
from .errors import SplitConfigError


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


SPLIT_NAMES = ("train", "validation", "test")


# --------------------------------------------------------------------------- splits
Bounds = dict[str, tuple[pd.Timestamp | None, pd.Timestamp | None]]


def validate_split_dates(
    splits: Splits | Mapping[str, Any], prefix: str = "feature_engineering.splits"
) -> Bounds:
    """``{split: (start, end)}`` as timestamps from ``feature_engineering.splits`` (validated: only
    ``train.start`` and ``test.end`` may be open; splits in order and disjoint)."""
    splits = Splits.parse(splits, prefix)

    def ts(d):
        return None if d is None else pd.Timestamp(d)

    return {name: (ts(getattr(splits, name).start), ts(getattr(splits, name).end)) for name in SPLIT_NAMES}


def resolve_embargo(embargo: Any, lookback: int, where: str = "feature_engineering.embargo_bars") -> int:
    """``"auto"`` means ``max_lookback``; an explicit integer must be at least that."""
    if embargo == "auto":
        return lookback
    if not _is_int(embargo) or embargo < lookback:
        raise ParameterError(
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
        raise ParameterError(
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
        raise ParameterError(f"environment.window must be a positive integer, got {window!r}.")
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
