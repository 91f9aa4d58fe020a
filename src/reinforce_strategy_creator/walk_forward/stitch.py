"""One account across every fold's test window: the stitched out-of-sample record.

The fold test windows tile one stretch of bars. :func:`stitched_market` lays that stretch out as
one market whose observation at each bar is built from the features scaled by the scaler of the
fold that decides there (``MarketArrays.obs_windows``), and :class:`FoldSwitch` hands each
decision to that fold's policies (``env.replay`` and ``evaluation.replay.replay_weights`` pass it
the bar). One replay then trades the whole stretch with continuous capital: a change of position
at a fold boundary is an order like any other and pays the same costs.

Fold k owns the decisions taken on the bars of its test window; the return of the bar after a
window's last bar comes from that window's last decision. :func:`fold_segments` cuts a lane of
the ledger into those per-fold pieces, and :func:`reconcile_segments` proves they add up to the
stitched equity, to the cent.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..agents.ensemble import PolicyLanes
from ..env import MarketArrays
from ..env.observation import build_windows
from ..errors import InputError
from ..evaluation.metrics import ruin_index
from ..features import build_model_input, scale_features
from .folds import Fold

__all__ = [
    "FoldSwitch",
    "ReconciliationError",
    "StitchedMarket",
    "fold_segments",
    "reconcile_segments",
    "stitched_market",
]


class ReconciliationError(InputError):
    """The per-fold pieces of a stitched ledger do not add up to its equity (a ledger that was
    edited, truncated or cut at the wrong bars)."""


@dataclass(frozen=True)
class StitchedMarket:
    """The stretch of every fold's test window as one market.

    ``market`` starts ``window − 1`` history rows before the first test bar (its first decision
    bar is the first test bar); ``starts[k]`` is the market bar of fold k's first decision;
    ``first_row`` is the market's first row in the whole price history.
    """

    market: MarketArrays
    starts: tuple[int, ...]
    first_row: int
    folds: tuple[str, ...]


def stitched_market(
    features: pd.DataFrame,
    prices: pd.DataFrame,
    folds: Sequence[Fold],
    scalers: Mapping[str, Mapping[str, Any]],
    window: int,
) -> StitchedMarket:
    """The market of the stitched record over the test windows of ``folds`` (in time order,
    contiguous). ``features`` are the unscaled ``feat_*`` columns over the whole history (on
    ``prices.index``), ``scalers`` each fold's scaler dict by fold name."""
    folds = list(folds)
    for a, b in zip(folds, folds[1:]):
        if a.test is None or b.test is None or a.test.stop_row != b.test.first_row:
            raise ValueError(f"the test windows of {a.name} and {b.name} are not contiguous")
    lo = folds[0].test.first_row - (window - 1)
    hi = folds[-1].test.stop_row
    if lo < 0:
        raise ValueError(f"the first test window needs {window - 1} rows of history before it")
    rows = features.iloc[lo:hi]
    starts = tuple(fold.test.first_row - lo for fold in folds)
    blocks = np.zeros((hi - lo, window * rows.shape[1]), dtype=np.float32)
    for k, fold in enumerate(folds):
        scaled = scale_features(rows, scalers[fold.name]).to_numpy()
        built = build_windows(scaled, window, 0)
        stop = starts[k + 1] if k + 1 < len(starts) else hi - lo
        blocks[starts[k] : stop] = built[starts[k] : stop]
    table = build_model_input(rows, prices, scalers[folds[0].name])
    market = MarketArrays.from_frame(table, name="walk-forward test stretch").with_obs_windows(blocks)
    return StitchedMarket(market, starts, lo, tuple(f.name for f in folds))


class FoldSwitch:
    """``decide(obs, bar)``: the decision of the fold whose test window holds ``bar``.

    ``starts`` are the market bars where each fold's decisions begin (ascending); fold k decides
    on bars ``starts[k] … starts[k+1] − 1``. A bar before the first start is refused.
    """

    needs_bar = True

    def __init__(self, deciders: Sequence[Callable[[torch.Tensor], Any]], starts: Sequence[int]):
        if len(deciders) != len(starts) or list(starts) != sorted(set(starts)):
            raise ValueError("one decider per fold, and fold starts strictly increasing")
        self.deciders, self.starts = list(deciders), list(starts)

    @classmethod
    def of_lanes(
        cls, lanes: Sequence[Sequence[tuple[Any, int, str]]], starts: Sequence[int], device: str = "cpu"
    ) -> FoldSwitch:
        """The switch over trained policies: ``lanes[i][k]`` is lane i's ``(PolicyBundle, seed,
        name)`` in fold k (``agents.ensemble.PolicyLanes``); a policy is loaded once for every
        lane and fold that runs it."""
        loaded: dict = {}
        deciders = [
            PolicyLanes.from_bundles([per_fold[k] for per_fold in lanes], device, loaded)
            for k in range(len(starts))
        ]
        return cls(deciders, starts)

    def fold_of(self, bar: int) -> int:
        k = bisect.bisect_right(self.starts, int(bar)) - 1
        if k < 0:
            raise ValueError(f"bar {bar} comes before the first fold's test window (bar {self.starts[0]})")
        return k

    def __call__(self, obs: torch.Tensor, bar: int):
        return self.deciders[self.fold_of(bar)](obs)


def fold_segments(lane: pd.DataFrame, starts: Sequence[int], folds: Sequence[str]) -> dict[str, pd.DataFrame]:
    """One lane of the stitched ledger (``bar`` and ``equity`` columns, one row per bar from the
    first decision) cut into each fold's piece: the rows from its first decision bar to the next
    fold's first decision bar (or the last bar), both included, so consecutive pieces share a row.

    A ruined lane (``metrics.ruin_index``) keeps one row per bar after its bar of ruin, frozen
    copies of that row that repeat its ``bar`` (``env.replay``); they are cut as the bars that
    follow it, so each later fold's piece is that frozen account, with no P&L."""
    bars = lane["bar"].to_numpy().copy()
    ruin = ruin_index(lane["equity"])
    if ruin is not None:
        bars[ruin + 1 :] = bars[ruin] + np.arange(1, len(bars) - ruin)
    out = {}
    for k, name in enumerate(folds):
        stop = starts[k + 1] if k + 1 < len(starts) else int(bars[-1])
        out[name] = lane[(bars >= starts[k]) & (bars <= stop)]
    return out


def reconcile_segments(
    lane: pd.DataFrame,
    segments: Mapping[str, pd.DataFrame],
    initial_capital: float,
    close: np.ndarray | None = None,
) -> dict:
    """Prove that the per-fold pieces add up to the stitched account, to the cent: the stitched
    account starts with ``initial_capital``; with ``close`` (the market's closes by bar), every
    bar's equity is its cash plus its shares at that close; each piece starts with the equity the
    previous one ended with, and the pieces' P&L sum to the final equity minus the initial capital."""
    equity = lane["equity"].to_numpy(dtype=float)
    cents = np.round(equity * 100.0).astype(np.int64)
    if close is not None:
        marked = lane["cash"].to_numpy(float) + lane["shares"].to_numpy(float) * close[lane["bar"].to_numpy()]
        off = np.abs(np.round(marked * 100.0).astype(np.int64) - cents)
        if (off > 1).any():  # one cent of rounding either side
            i = int(np.argmax(off))
            raise ReconciliationError(
                f"bar {int(lane['bar'].iloc[i])}: equity {equity[i]:.2f} but cash + shares x close = "
                f"{marked[i]:.2f}"
            )
    if cents[0] != round(initial_capital * 100.0):
        raise ReconciliationError(
            f"the stitched account starts with {equity[0]:.2f}, not {initial_capital:.2f}"
        )
    pnl, previous_end = {}, cents[0]
    for name, piece in segments.items():
        e = np.round(piece["equity"].to_numpy(dtype=float) * 100.0).astype(np.int64)
        if e[0] != previous_end:
            raise ReconciliationError(
                f"{name} starts with equity {e[0] / 100:.2f}, the previous fold ended with "
                f"{previous_end / 100:.2f}"
            )
        pnl[name] = int(e[-1] - e[0])
        previous_end = e[-1]
    total = int(cents[-1] - cents[0])
    if sum(pnl.values()) != total or previous_end != cents[-1]:
        raise ReconciliationError(
            f"fold P&L sums to {sum(pnl.values()) / 100:.2f}, the stitched account made {total / 100:.2f}"
        )
    return {"initial_cents": int(cents[0]), "final_cents": int(cents[-1]), "fold_pnl_cents": pnl}
