"""``data_ingestion``: how a raw price file or a universe becomes the ``universe`` panel and, for
one instrument, ``primary_prices`` (docs/data.md).

The same block, nested as ``deployment.feed``, normalises the paper-trading feed with the same
rules; its errors then name ``deployment.feed.<key>``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .base import Flag, Number, Params, PositiveInt


class IngestionParams(Params):
    """Validated ``data_ingestion`` parameters."""

    PATH: ClassVar[str] = "data_ingestion"
    FILE: ClassVar[str] = "conf/base/parameters_data_ingestion.yml"

    filepath: str | None = "data/01_raw/sp500_daily_1999_2018.csv"
    """The file the catalog reads, named in errors and in the quality report. Override with `--params
    data_ingestion.filepath=path/to/file.csv`."""
    ticker: str | None = None
    """One instrument from a long file (a Ticker/Symbol column), e.g. `AAPL`; `null` for a single series or a
    universe."""
    format: Literal["auto", "single", "long", "wide", "yfinance"] = "auto"
    """`auto`: a Ticker/Symbol column = `long`, Open/High/Low/Close/Volume columns = `single`, else `wide`;
    `single`: one instrument's OHLCV; `long`: one row per ticker and date; `wide`: a date column and one close
    column per ticker; `yfinance`: download `tickers` between `start` and `end` (optional extra)."""
    tickers: tuple[str, ...] | None = None
    """A universe's tickers to keep, in this order (`null`: every ticker in the file); required for
    `yfinance`. On the command line, separated by spaces: `--params "data_ingestion.tickers=AAPL MSFT"`."""
    start: str | None = None
    """First date to download (`yfinance` only), e.g. `"2015-01-01"`."""
    end: str | None = None
    """Day after the last date to download (`yfinance` only); `null`: up to today."""
    min_rows: PositiveInt = Field(252, ge=2)
    """Fewer usable rows than this is an error (252 ≈ one trading year of daily bars)."""
    gap_factor: Number = Field(5.0, gt=1)
    """A gap is a spacing above `gap_factor` × the median bar spacing; gaps are reported, not rejected."""
    date_format: str | None = None
    """`null` = auto-detect m/d/Y, ISO dates, ISO date-times; else a strftime format, e.g. `"%d/%m/%Y"`."""
    adjust: Flag = True
    """Scale Open/High/Low/Close by Adj Close / Close (and Volume by its inverse)."""
    stale_open_threshold: Number = Field(0.05, ge=0, le=1)
    """Years where more than this fraction of bars have an Open equal to the previous bar's Close are named in
    a warning and in the quality report's `stale_open` entry (docs/data.md, "Stale opens")."""

    @field_validator("ticker")
    @classmethod
    def _ticker(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must be a ticker symbol such as AAPL, or null")
        return v

    @field_validator("tickers", mode="before")
    @classmethod
    def _ticker_list(cls, v: object) -> object:
        return v.replace(",", " ").split() if isinstance(v, str) else v  # Kedro's --params splits on commas

    @model_validator(mode="after")
    def _universe_choice(self) -> IngestionParams:
        if self.format == "yfinance" and not (self.tickers and self.start):
            raise ValueError("format 'yfinance' needs `tickers` (the symbols) and `start` (first date)")
        if self.ticker is not None and self.tickers is not None:
            raise ValueError(
                "give `ticker` (one instrument of a long file) or `tickers` (a universe), not both"
            )
        return self

    @property
    def prefix(self) -> str:
        """The dotted path errors name (``data_ingestion`` or ``deployment.feed``)."""
        return self.path
