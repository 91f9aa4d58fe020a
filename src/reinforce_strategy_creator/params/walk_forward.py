"""``walk_forward``: the fold layout, counted back from the end of the data (docs/walk_forward.md).

Windows are whole years on the calendar, so a user's own file gets folds without editing dates;
:func:`reinforce_strategy_creator.walk_forward.plan_folds` turns this block into dates and rows.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from .base import Flag, NonNegativeInt, Params, PositiveInt


class WalkForwardParams(Params):
    """``walk_forward``: paper period, folds, and how each fold's windows are laid out."""

    PATH: ClassVar[str] = "walk_forward"
    FILE: ClassVar[str] = "conf/base/parameters_walk_forward.yml"

    paper_years: NonNegativeInt = 1
    """Years at the end of the data held back for paper trading: no fold trains, selects or tests on
    them; the deployment fold's champion trades them. 0 = none held back (the deployment fold trains
    and selects through the last bar)."""
    test_years: PositiveInt = 1
    """Years in each fold's test window. The test windows are contiguous, disjoint, and end where
    the paper period starts."""
    folds: PositiveInt = 5
    """Number of folds (test windows), counted back from the paper period."""
    validation_years: PositiveInt = 2
    """Years in each fold's validation window, right before its test window (checkpoints and the
    fold's champion are chosen there)."""
    training: Literal["expanding", "rolling"] = "expanding"
    """`expanding`: every fold trains from the first usable bar up to its validation window;
    `rolling`: on the last `train_years` before it."""
    train_years: PositiveInt = 8
    """Length of a `rolling` training window in years (a fold with less history before it trains on
    all of it, at least `min_train_years`); unused with `expanding`."""
    min_train_years: PositiveInt = 5
    """Fewest years of training any fold (deployment included) may have (a first year whose bars
    start within a week of its first day counts whole); a history too short for it is an error
    naming the years available."""
    anchor: Literal["calendar_year", "data_end"] = "calendar_year"
    """Where the year boundaries fall: `calendar_year` = on 1 January (a last, partial year is the
    last paper year); `data_end` = on the anniversaries of the day after the last bar, so the paper
    period is exactly the last `paper_years` years."""
    min_window_bars: PositiveInt = 20
    """A training, validation, test or paper window with fewer bars than this is an error (a gap in
    the data, or a partial last year too short to trade)."""
    reuse_folds: Flag = True
    """Load a fold stored under the same fingerprint (its data up to the validation end, windows,
    training and selection parameters, agents and code) from `walk_forward.fold_cache` instead of
    retraining it; `false`: retrain every fold (and store nothing)."""
    warm_start: Flag = False
    """Start each fold's training from the previous fold's champion weights. Not supported yet:
    `true` is refused with an error; `false`: every fold trains from scratch."""

    @model_validator(mode="after")
    def _rolling_window_holds_minimum(self) -> WalkForwardParams:
        if self.training == "rolling" and self.train_years < self.min_train_years:
            raise ValueError(
                f"train_years ({self.train_years}) must be >= min_train_years "
                f"({self.min_train_years}) with training: rolling, otherwise no fold could train "
                "on enough years; raise train_years or lower min_train_years"
            )
        return self

    def years_before_paper(self, folds: int | None = None) -> int:
        """Years of history the layout needs before the paper period (from the first training
        bar on)."""
        folds = self.folds if folds is None else folds
        return folds * self.test_years + self.validation_years + self.min_train_years
