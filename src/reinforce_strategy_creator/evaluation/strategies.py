"""The one interface every decider implements: fit on a window, decide each bar.

A :class:`Strategy` turns the closes of N assets (N >= 1: a single asset is a universe of one)
into target weights over those assets, one account ("lane") per seed:

* :meth:`Strategy.fit` learns from a training window (rule-based benchmarks learn nothing and
  return themselves), like a scikit-learn / skfolio estimator's ``fit``;
* :meth:`Strategy.decide` is the decision after bar ``t`` has closed: ``(lanes, N)`` target
  weights, a NaN row where a lane holds (no order, no cost; weights drift with prices). It reads the
  closes up to and including ``t`` and nothing later: the default implementation hands
  :meth:`Strategy.schedule` the prices cut at ``t``, so it cannot look ahead;
* :meth:`Strategy.schedule` is every decision of a period at once, ``(lanes, T, N)`` with NaN
  rows where a lane holds, vectorised where the rule allows. It must equal :meth:`decide` at
  every bar (tests/evaluation/test_benchmarks.py checks it for every benchmark at N = 1 and
  N > 1): changing a close after ``t`` never changes the decision at ``t``.

The execution kernels fill a decision at the next bar with the agents' costs and capital:
:func:`~.benchmarks.position_targets` feeds a schedule to the single-asset ``env.replay``,
``evaluation.replay.ScheduleDecider`` to the portfolio replay. Importable without Kedro.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .metrics import EvaluationInputError

__all__ = ["Prices", "Strategy", "StrategyInputError", "check_first"]


class StrategyInputError(EvaluationInputError):
    """A strategy cannot decide on its input (bad prices, bad parameters, a failed fit)."""


@dataclass(frozen=True)
class Prices:
    """Closes of N assets on T dates: ``close`` (T, N) float64, NaN before an asset lists (a
    leading block per column); ``start`` is the first row of the replayed window (the rows before
    it are history a strategy may read, as the agents' features read the bars before a window)."""

    close: np.ndarray
    dates: pd.DatetimeIndex
    tickers: tuple[str, ...]
    start: int = 0

    def __post_init__(self) -> None:
        close = np.asarray(self.close, dtype=np.float64)
        if close.ndim == 1:
            close = close[:, None]
        if close.ndim != 2 or close.shape[0] == 0 or close.shape[1] == 0:
            raise StrategyInputError(
                f"prices: expected closes of shape (dates, assets) with at least one of each, got "
                f"{np.shape(self.close)}"
            )
        tickers = tuple(str(t) for t in self.tickers)
        if len(tickers) != close.shape[1]:
            raise StrategyInputError(
                f"prices: {len(tickers)} tickers {list(tickers)} for {close.shape[1]} columns"
            )
        dates = pd.DatetimeIndex(self.dates)
        if len(dates) != close.shape[0]:
            raise StrategyInputError(f"prices: {len(dates)} dates for {close.shape[0]} rows of closes")
        bad = np.isfinite(close) & (close <= 0)
        if bad.any():
            r, c = (int(i[0]) for i in np.nonzero(bad))
            raise StrategyInputError(
                f"prices: the close of {tickers[c]!r} on {dates[r].date()} is {close[r, c]}, not a positive "
                "price; clean the price table (data_ingestion) first"
            )
        if not 0 <= self.start < close.shape[0]:
            raise StrategyInputError(f"prices: start row {self.start} is outside the {close.shape[0]} rows")
        object.__setattr__(self, "close", close)
        object.__setattr__(self, "dates", dates)
        object.__setattr__(self, "tickers", tickers)

    @classmethod
    def of(cls, close: Sequence[float] | np.ndarray, start: int = 0, name: str = "asset") -> Prices:
        """One asset's closes on a business-day calendar (dates only matter to calendar rebalancing)."""
        close = np.asarray(close, dtype=np.float64)
        return cls(close, pd.bdate_range("2000-01-03", periods=len(close)), (name,), start)

    @property
    def n_bars(self) -> int:
        return int(self.close.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.close.shape[1])

    def up_to(self, bar: int) -> Prices:
        """The rows up to and including ``bar``: everything a decision at ``bar`` may read."""
        return Prices(self.close[: bar + 1], self.dates[: bar + 1], self.tickers, min(self.start, bar))

    def tradable(self, bar: int) -> np.ndarray:
        """(N,) bool: the assets with a close at ``bar`` (listed)."""
        return np.isfinite(self.close[bar])


class Strategy(ABC):
    """A decider over N assets (see the module docstring). ``name`` is its run in the ledger,
    ``kind`` its ledger kind; ``seeds`` are its lanes (one account each); ``events`` are the rules
    it applied in the last :meth:`schedule` (dicts with ``bar``, the row in the prices, ``date``,
    ``run``, ``event`` and ``detail``), reported next to its ledger."""

    name: str = ""
    kind: str = "benchmark"
    events: list[dict] | tuple = ()  # a list once :meth:`schedule` has run
    _seeds: tuple[int, ...] = (0,)  # a seeded strategy sets its own

    @property
    def seeds(self) -> tuple[int, ...]:
        return self._seeds

    @property
    def lanes(self) -> int:
        return len(self.seeds)

    def fit(self, prices: Prices) -> Strategy:
        """Learn from the training window ``prices``; a rule-based strategy learns nothing."""
        return self

    def decide(self, prices: Prices, bar: int, first: int) -> np.ndarray:
        """``(lanes, N)`` target weights decided after ``bar`` closed, in a period whose first
        decision is at row ``first``; a NaN row is a lane that holds. Reads ``prices`` up to
        ``bar`` only: the schedule of the prices cut at ``bar``."""
        if not first <= bar < prices.n_bars:
            raise StrategyInputError(
                f"decide: bar {bar} is not between the first decision {first} and row {prices.n_bars - 1}"
            )
        return self.schedule(prices.up_to(bar), first)[:, bar]

    @abstractmethod
    def schedule(self, prices: Prices, first: int) -> np.ndarray:
        """Every decision from row ``first`` on: ``(lanes, T, N)``, NaN before ``first`` and where a
        lane holds. Row t depends on ``prices`` rows up to t only."""

    def _event(self, prices: Prices, bar: int, event: str, detail: str = "") -> None:
        self.events.append(
            {"bar": int(bar), "date": prices.dates[bar], "run": self.name, "event": event, "detail": detail}
        )

    def _empty(self, prices: Prices) -> np.ndarray:
        self.events = []
        return np.full((self.lanes, prices.n_bars, prices.n_assets), np.nan)


def check_first(prices: Prices, first: int) -> int:
    """``first`` as a row of ``prices`` where a decision can be made, or a clear error."""
    if isinstance(first, bool) or not isinstance(first, (int, np.integer)) or not 0 <= first < prices.n_bars:
        raise StrategyInputError(
            f"first decision row {first!r} is outside the {prices.n_bars} rows of prices "
            f"({prices.dates[0].date()} .. {prices.dates[-1].date()})"
        )
    return int(first)
