"""``feature_engineering``: indicators, chronological splits, embargo and scaler (docs/features.md).

Each indicator is its own small block under ``feature_engineering.features.indicators``; set one
to ``null`` to leave it out. The order of the blocks here is the order of the feature columns.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .base import NonNegativeInt, Number, Params, PositiveInt


class _Periods(Params):
    """An indicator computed once per period in ``periods``."""

    MIN_PERIOD: ClassVar[int] = 2

    periods: tuple[PositiveInt, ...]

    @field_validator("periods")
    @classmethod
    def _periods(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("must be a non-empty list of integers")
        if len(set(v)) != len(v):
            raise ValueError(f"has duplicates: {list(v)}")
        small = [p for p in v if p < cls.MIN_PERIOD]
        if small:
            raise ValueError(f"periods must be >= {cls.MIN_PERIOD}, got {small[0]}")
        return v


class LogReturn(_Periods):
    MIN_PERIOD: ClassVar[int] = 1
    periods: tuple[PositiveInt, ...] = (1, 5, 20)
    """Log returns log(C_t / C_{t−h}) for each h."""


class SmaRatio(_Periods):
    periods: tuple[PositiveInt, ...] = (10, 20, 50)
    """C_t / SMA_n − 1 for each n."""


class EmaRatio(_Periods):
    periods: tuple[PositiveInt, ...] = (10, 20)
    """C_t / EMA_n − 1 for each n."""


class Rsi(_Periods):
    periods: tuple[PositiveInt, ...] = (14,)
    """RSI_n in [0, 100] for each n."""


class MacdHist(Params):
    fast: PositiveInt = Field(12, ge=2)
    """MACD histogram / C_t: fast EMA length."""
    slow: PositiveInt = Field(26, ge=2)
    """MACD histogram: slow EMA length."""
    signal: PositiveInt = 9
    """MACD histogram: signal EMA length."""

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MacdHist:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


class BBands(_Periods):
    periods: tuple[PositiveInt, ...] = (20,)
    """Bollinger %B and bandwidth for each period."""
    nbdev: Number = Field(2.0, gt=0)
    """Bollinger band width in standard deviations."""


class AtrRatio(_Periods):
    MIN_PERIOD: ClassVar[int] = 1
    periods: tuple[PositiveInt, ...] = (14,)
    """ATR_n / C_t for each n."""


class RealizedVol(_Periods):
    periods: tuple[PositiveInt, ...] = (20,)
    """Population standard deviation of 1-bar log returns over n bars."""


class VolumeZ(_Periods):
    periods: tuple[PositiveInt, ...] = (20,)
    """z-score of log(1 + Volume) over n bars."""


class Indicators(Params):
    """The indicators to compute, in column order. An indicator left out (or `null`) is not computed;
    the defaults of `conf/base` select all of them."""

    logret: LogReturn | None = None
    sma_ratio: SmaRatio | None = None
    ema_ratio: EmaRatio | None = None
    rsi: Rsi | None = None
    macd_hist: MacdHist | None = None
    bbands: BBands | None = None
    atr_ratio: AtrRatio | None = None
    realized_vol: RealizedVol | None = None
    volume_z: VolumeZ | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Indicators:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("no indicator is selected; keep at least one")
        return self


class FeatureSpec(Params):
    """What to compute (``feature_engineering.features``)."""

    PATH: ClassVar[str] = "feature_engineering.features"
    FILE: ClassVar[str] = "conf/base/parameters_feature_engineering.yml"

    recursive_warmup: NonNegativeInt = 3
    """Recursive indicators (EMA, RSI, MACD, ATR) are computed on a trailing window of `recursive_warmup` ×
    period extra bars so their seed has decayed and `max_lookback` is their exact memory."""
    indicators: Indicators = Indicators(
        logret=LogReturn(),
        sma_ratio=SmaRatio(),
        ema_ratio=EmaRatio(),
        rsi=Rsi(),
        macd_hist=MacdHist(),
        bbands=BBands(),
        atr_ratio=AtrRatio(),
        realized_vol=RealizedVol(),
        volume_z=VolumeZ(),
    )
    """The indicators to compute, in this order (docs/features.md has each formula)."""


class SplitBounds(Params):
    start: dt.date | None = None
    end: dt.date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SplitBounds:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        return self


class Splits(Params):
    train: SplitBounds = SplitBounds(start=None, end=dt.date(2012, 12, 31))
    """First and last date of the train split (inclusive); `start: null` = the start of the data."""
    validation: SplitBounds = SplitBounds(start=dt.date(2013, 1, 1), end=dt.date(2014, 12, 31))
    """First (before the embargo) and last date of the validation split."""
    test: SplitBounds = SplitBounds(start=dt.date(2015, 1, 1), end=dt.date(2017, 12, 31))
    """First (before the embargo) and last date of the test split; later bars (2018) are kept back for paper
    trading. `end: null` = the end of the data."""

    @model_validator(mode="after")
    def _disjoint_and_ordered(self) -> Splits:
        if self.validation.start is None or self.test.start is None:
            raise ValueError("validation.start and test.start are required")
        if self.train.end is None or self.validation.end is None:
            raise ValueError("train.end and validation.end are required")
        for prev, nxt in (("train", "validation"), ("validation", "test")):
            end, start = getattr(self, prev).end, getattr(self, nxt).start
            if not end < start:
                raise ValueError(
                    f"{nxt}.start ({start}) must come after {prev}.end ({end}): the splits overlap or "
                    "are out of order"
                )
        return self


class FeatureParams(Params):
    """``feature_engineering``: indicators, chronological splits, embargo and scaler."""

    PATH: ClassVar[str] = "feature_engineering"
    FILE: ClassVar[str] = "conf/base/parameters_feature_engineering.yml"

    features: FeatureSpec = FeatureSpec()
    splits: Splits = Splits()
    embargo_bars: Literal["auto"] | NonNegativeInt = "auto"
    """Rows dropped at the start of validation and of test: `auto` = `max_lookback` of the feature spec, or an
    integer ≥ it."""
    min_split_rows: PositiveInt = 100
    """A split with fewer rows than this (after the embargo) is an error."""
    scaler: Literal["standard", "robust"] = "standard"
    """`standard` | `robust` scikit-learn scaler, fitted on train rows only."""
