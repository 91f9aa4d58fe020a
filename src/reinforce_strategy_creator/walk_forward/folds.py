"""Fold layout of a walk-forward evaluation, counted back from the end of the data.

:func:`plan_folds` turns the ``walk_forward`` block and a price index into dates and row
positions: the folds (train → validation → test, test windows tiling the years before the paper
period), the deployment fold (trains and selects right before the paper period) and the paper
period. Layout, embargo rule and the S&P 500 default table: docs/walk_forward.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import InputError
from ..params.base import ParameterError
from ..params.walk_forward import WalkForwardParams

__all__ = ["YEAR_SLACK_DAYS", "Fold", "FoldIndexError", "FoldLayoutError", "FoldPlan", "Window", "plan_folds"]

#: A window "covers" a year whose first bars come up to this many days after its first calendar
#: day (1 January falls on a holiday or a weekend; a file may start on the first trading day).
YEAR_SLACK_DAYS = 7


class FoldLayoutError(ParameterError):
    """The price history cannot hold the folds the ``walk_forward`` parameters ask for."""


class FoldIndexError(InputError):
    """The index handed to :func:`plan_folds` is not a strictly increasing DatetimeIndex."""


@dataclass(frozen=True)
class Window:
    """Rows ``index[first_row:stop_row]`` of the price index: the bars from ``start`` to ``end``
    (inclusive), inside the nominal period ``[period_start, period_end)``."""

    first_row: int
    stop_row: int
    start: pd.Timestamp
    end: pd.Timestamp
    period_start: pd.Timestamp
    period_end: pd.Timestamp

    @property
    def n_bars(self) -> int:
        return self.stop_row - self.first_row

    @property
    def rows(self) -> slice:
        """``frame.iloc[window.rows]`` selects the window's bars."""
        return slice(self.first_row, self.stop_row)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "first_row": self.first_row,
            "stop_row": self.stop_row,
            "n_bars": self.n_bars,
            "period_start": _iso(self.period_start),
            "period_end": _iso(self.period_end),
        }


@dataclass(frozen=True)
class Fold:
    """One train → select → trade step. ``test`` is the paper period for the deployment fold
    (``None`` when ``paper_years`` is 0). The embargo rows ``train.stop_row …
    validation.first_row − 1`` belong to no window."""

    name: str
    label: str
    train: Window
    validation: Window
    test: Window | None

    @property
    def embargo_rows(self) -> range:
        return range(self.train.stop_row, self.validation.first_row)

    def windows(self) -> Iterator[tuple[str, Window]]:
        yield "train", self.train
        yield "validation", self.validation
        if self.test is not None:
            yield "test", self.test

    def to_dict(self) -> dict[str, Any]:
        windows = {kind: window.to_dict() for kind, window in self.windows()}
        return {"name": self.name, "label": self.label, **windows, "embargo_bars": len(self.embargo_rows)}


@dataclass(frozen=True)
class FoldPlan:
    """The folds in time order, the deployment fold and the paper period of one price index."""

    folds: tuple[Fold, ...]
    deployment: Fold
    params: WalkForwardParams
    embargo_bars: int
    warmup_bars: int

    @property
    def paper(self) -> Window | None:
        """The held-back paper-trading period (the deployment fold's test), or None."""
        return self.deployment.test

    @property
    def test_rows(self) -> slice:
        """The stitched out-of-sample stretch: every fold's test window, end to end."""
        return slice(self.folds[0].test.first_row, self.folds[-1].test.stop_row)

    def __iter__(self) -> Iterator[Fold]:
        return iter(self.folds)

    def __len__(self) -> int:
        return len(self.folds)

    def table(self) -> pd.DataFrame:
        """One row per fold, then the deployment fold: first/last bar and bar count per window."""
        rows = []
        for fold in (*self.folds, self.deployment):
            row: dict[str, Any] = {"fold": fold.name, "label": fold.label}
            for kind in ("train", "validation", "test"):
                window = getattr(fold, kind)
                row[f"{kind}_start"] = None if window is None else window.start
                row[f"{kind}_end"] = None if window is None else window.end
                row[f"{kind}_bars"] = 0 if window is None else window.n_bars
            row["embargo_bars"] = len(fold.embargo_rows)
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able layout (dates as ISO strings), with the parameters it came from."""
        return {
            "params": self.params.to_params(),
            "embargo_bars": self.embargo_bars,
            "warmup_bars": self.warmup_bars,
            "folds": [f.to_dict() for f in self.folds],
            "deployment": self.deployment.to_dict(),
            "paper": None if self.paper is None else self.paper.to_dict(),
        }


def _iso(ts: pd.Timestamp) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def _check_index(index: Any) -> pd.DatetimeIndex:
    fix = "clean the prices with market_data.normalise_prices first."
    if not isinstance(index, pd.DatetimeIndex):
        raise FoldIndexError(
            f"plan_folds needs the prices' DatetimeIndex, got "
            f"{type(index).__name__}; pass prices.index of primary_prices."
        )
    if len(index) == 0:
        raise FoldIndexError("plan_folds: the price index is empty; there is no history to lay folds on.")
    if index.hasnans:
        raise FoldIndexError(
            f"plan_folds: the price index has {int(index.isna().sum())} missing dates (NaT); {fix}"
        )
    if not index.is_monotonic_increasing or not index.is_unique:
        bad = next(i for i in range(1, len(index)) if not index[i] > index[i - 1])
        raise FoldIndexError(
            f"plan_folds: the price index must be strictly increasing, but row "
            f"{bad} ({index[bad]}) does not come after row {bad - 1} "
            f"({index[bad - 1]}); {fix}"
        )
    return index


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"plan_folds: {name} must be an integer >= 0, got {value!r}")
    return value


class _Layout:
    """Year boundaries and row positions of one (index, params) pair.

    Every boundary is ``end - k years`` for a whole k, computed from ``end`` directly (never by
    chaining offsets), so neighbouring windows share their boundary even around 29 February.
    """

    def __init__(self, index: pd.DatetimeIndex, params: WalkForwardParams, embargo: int, warmup: int):
        self.index, self.p, self.embargo, self.warmup = index, params, embargo, warmup
        last = index[-1]
        if params.anchor == "calendar_year":
            self.end = pd.Timestamp(year=last.year + 1, month=1, day=1, tz=index.tz)
        else:  # data_end: anniversaries of the day after the last bar
            self.end = last.normalize() + pd.Timedelta(days=1)
        self.paper_start = self.back(params.paper_years)

    def back(self, years: int) -> pd.Timestamp:
        return self.end - pd.DateOffset(years=years)

    def test_back(self, k: int, folds: int | None = None) -> int:
        """Years from ``end`` back to the start of fold ``k``'s test window (k = folds + 1: the
        paper period)."""
        folds = self.p.folds if folds is None else folds
        return self.p.paper_years + (folds - k + 1) * self.p.test_years

    def pos(self, ts: pd.Timestamp) -> int:
        return int(self.index.searchsorted(ts, side="left"))

    def window(self, first: int, stop: int, period_start: pd.Timestamp, period_end: pd.Timestamp) -> Window:
        stop = max(stop, first)
        start = self.index[first] if stop > first else pd.NaT
        end = self.index[stop - 1] if stop > first else pd.NaT
        return Window(first, stop, start, end, period_start, period_end)

    def period(self, from_years: int, to_years: int) -> Window:
        """The bars of ``[end - from_years, end - to_years)``."""
        start, stop = self.back(from_years), self.back(to_years)
        return self.window(self.pos(start), self.pos(stop), start, stop)

    def label(self, start: pd.Timestamp, stop: pd.Timestamp) -> str:
        if self.p.anchor == "calendar_year":
            last = stop.year - 1
            return str(start.year) if last == start.year else f"{start.year}-{last}"
        return f"{start.date().isoformat()}..{(stop - pd.Timedelta(days=1)).date().isoformat()}"

    def fold(self, name: str, label: str, test_back: int, test: Window | None) -> Fold:
        """A fold whose validation window ends ``test_back`` years before ``end``."""
        p = self.p
        validation = self.period(test_back + p.validation_years, test_back)
        first_usable = self.index[self.warmup]
        if p.training == "expanding":
            nominal = first_usable
        else:
            nominal = max(self.back(test_back + p.validation_years + p.train_years), first_usable)
        first = max(self.pos(nominal), self.warmup)
        train = self.window(first, validation.first_row - self.embargo, nominal, validation.period_start)
        return Fold(name, label, train, validation, test)

    def fits(self, folds: int) -> bool:
        """Enough years before fold 1's validation window for ``min_train_years`` of training."""
        p = self.p
        need_from = self.back(self.test_back(1, folds) + p.validation_years + p.min_train_years)
        return self.index[self.warmup] <= need_from + pd.Timedelta(days=YEAR_SLACK_DAYS)


def _years(a: pd.Timestamp, b: pd.Timestamp) -> float:
    return (b - a) / pd.Timedelta(days=365.25)


def _too_short(lay: _Layout) -> FoldLayoutError:
    p, index, path = lay.p, lay.index, lay.p.path
    first = index[lay.warmup]
    fitting = next((k for k in range(p.folds - 1, 0, -1) if lay.fits(k)), 0)
    warm = f", after {lay.warmup} warm-up bars" if lay.warmup else ""
    before = max(_years(first, lay.paper_start), 0.0)
    what = (
        f"{path}.folds = {p.folds} test windows of {path}.test_years = {p.test_years}, "
        f"{path}.validation_years = {p.validation_years} and {path}.min_train_years = "
        f"{p.min_train_years} need {p.years_before_paper()} years of history before the paper "
        f"period ({path}.paper_years = {p.paper_years}, from {_iso(lay.paper_start)})"
    )
    have = (
        f"the data has {before:.1f} years before it ({_iso(first)} … "
        f"{_iso(lay.paper_start - pd.Timedelta(days=1))}{warm}; "
        f"{_years(index[0], lay.end):.1f} years in all, {_iso(index[0])} … "
        f"{_iso(index[-1])})"
    )
    if fitting:
        fix = (
            f"Set {path}.folds to at most {fitting}, or lower {path}.min_train_years, "
            f"{path}.validation_years or {path}.test_years, or supply a longer history"
        )
    else:
        fix = (
            f"Not even one fold fits: lower {path}.min_train_years, {path}.validation_years, "
            f"{path}.test_years or {path}.paper_years, or supply a longer history"
        )
    return FoldLayoutError(
        f"{path}: the price history is too short for the folds asked for: "
        f"{what}; {have}. {fix} (in {p.FILE} or with --params)."
    )


def _check_training_years(lay: _Layout, fold: Fold) -> None:
    """A training window must start within the year slack of ``min_train_years`` before its
    validation window: a gap in the data at the start of a rolling window can leave less."""
    p, path = lay.p, lay.p.path
    need_from = fold.validation.period_start - pd.DateOffset(years=p.min_train_years)
    first = fold.train.start
    if fold.train.n_bars and first > need_from + pd.Timedelta(days=YEAR_SLACK_DAYS):
        raise FoldLayoutError(
            f"{path}: {fold.name}'s training window starts on {_iso(first)}, so it holds less than "
            f"{path}.min_train_years = {p.min_train_years} year(s) before its validation window "
            f"({_iso(fold.validation.period_start)}); the data has a gap before {_iso(first)}. "
            f"Check the file, use training: expanding or a longer {path}.train_years, or lower "
            f"{path}.min_train_years."
        )


def _check_bars(lay: _Layout, fold: Fold) -> None:
    _check_training_years(lay, fold)
    p, path = lay.p, lay.p.path
    for kind, window in fold.windows():
        if window.n_bars >= p.min_window_bars:
            continue
        paper = fold.name == "deployment" and kind == "test"
        what = "paper period" if paper else f"{fold.name}'s {kind} window"
        last_day = window.period_end - pd.Timedelta(days=1)
        span = f"{_iso(window.period_start)} … {_iso(last_day)}"
        if last_day > lay.index[-1]:
            span = f"{_iso(window.period_start)} … {_iso(lay.index[-1])} (the last bar)"
        extra = ""
        if kind == "train" and lay.embargo:
            extra = f" after the embargo of {lay.embargo} bars at its end"
        hint = f"The data may have a gap there; check the file or lower {path}.min_window_bars"
        if paper and p.anchor == "calendar_year":
            hint = (
                f"The last calendar year of the data is short; set {path}.anchor: data_end "
                f"(the paper period becomes the {p.paper_years} year(s) up to the last bar), "
                f"or lower {path}.min_window_bars"
            )
        raise FoldLayoutError(
            f"{path}: the {what} {span} has {window.n_bars} bars{extra}, fewer "
            f"than {path}.min_window_bars = {p.min_window_bars}. {hint}."
        )


def plan_folds(
    index: pd.DatetimeIndex,
    params: WalkForwardParams | Mapping[str, Any] | None = None,
    *,
    embargo_bars: int = 0,
    warmup_bars: int = 0,
) -> FoldPlan:
    """Lay the walk-forward folds on ``index`` (the prices' strictly increasing DatetimeIndex).

    Args:
        index: the bars of the whole history (``primary_prices.index``).
        params: the ``walk_forward`` block (:class:`WalkForwardParams` or its mapping).
        embargo_bars: rows removed at the end of every training window (deployment included):
            the bars after a training window that its environment's last rewards read (the fill
            and mark of the last decision), so that no training reward reads a validation bar.
            Validation and test windows are never shortened: their features read the history
            before them causally, which is not leakage (docs/walk_forward.md, "Embargo").
        warmup_bars: first rows of the data no window may use (their features are incomplete,
            e.g. ``features.max_lookback``); expanding training windows start right after them.

    Returns:
        :class:`FoldPlan`: ``folds`` in time order (``fold_1`` … ``fold_n``, labelled by test
        period), ``deployment`` and ``paper``.

    Raises:
        FoldLayoutError: the history is too short for the folds asked for (the message names the
            parameters and the years available), or a window has fewer than
            ``min_window_bars`` bars.
        FoldIndexError: ``index`` is not a non-empty, strictly increasing DatetimeIndex.
    """
    params = WalkForwardParams.parse(params)
    index = _check_index(index)
    embargo, warmup = _count("embargo_bars", embargo_bars), _count("warmup_bars", warmup_bars)
    if warmup >= len(index):
        raise FoldLayoutError(
            f"{params.path}: all {len(index)} bars are warm-up bars "
            f"(warmup_bars = {warmup}); supply a longer history."
        )
    lay = _Layout(index, params, embargo, warmup)
    if not lay.fits(params.folds):
        raise _too_short(lay)
    folds = []
    for k in range(1, params.folds + 1):
        back = lay.test_back(k)
        test = lay.period(back, back - params.test_years)
        label = lay.label(test.period_start, test.period_end)
        folds.append(lay.fold(f"fold_{k}", label, back, test))
    paper, label = None, "deployment"
    if params.paper_years:
        paper = lay.window(lay.pos(lay.paper_start), len(index), lay.paper_start, lay.end)
        label = "paper " + lay.label(lay.paper_start, lay.end)
    deployment = lay.fold("deployment", label, params.paper_years, paper)
    for fold in (*folds, deployment):
        _check_bars(lay, fold)
    return FoldPlan(tuple(folds), deployment, params, embargo, warmup)
