"""Portfolio replays as the project's long ledgers, so the existing evaluation reads them unchanged.

* :func:`run_ledger` — one row per lane (seed) and bar, the columns of
  :data:`RUN_LEDGER_COLUMNS`: what ``evaluation.results.split_records`` needs (kind, run, seed,
  date, bar, equity) plus the account's money columns. ``evaluation.metrics`` recognises a
  portfolio ledger by its ``traded_notional`` column (turnover, exposure, costs and fills are
  measured from it; docs/metrics.md).
* :func:`weights_ledger` — one row per lane, bar and ticker (weight at the mark, shares, traded
  shares, the ticker's profit contribution before costs) for the report and notebooks.
* :func:`portfolio_ledger` — every run of a split in one table (all under one setup).

Money is in account currency. ``n_fills`` counts the assets traded on the bar (the fills of the
bar's orders); ``contribution`` of row s is the shares held from row s-1's mark times the close
change to row s (0 on the start row), so per lane and bar the contributions minus ``cost`` add up
to the equity change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..candidates import ENSEMBLE_SEED
from ..env.portfolio import PortfolioInputError
from .replay import LEDGER_COLUMNS, PortfolioRun

__all__ = [
    "RUN_LEDGER_COLUMNS",
    "SETUP_KEYS",
    "WEIGHTS_LEDGER_COLUMNS",
    "contributions_wide",
    "portfolio_ledger",
    "run_ledger",
    "weights_ledger",
    "weights_wide",
]

#: the replay's columns (:data:`.replay.LEDGER_COLUMNS`) with the lane named, and its asset fills
RUN_LEDGER_COLUMNS = ("split", "kind", "run", "seed", *LEDGER_COLUMNS[1:], "n_fills")
WEIGHTS_LEDGER_COLUMNS = (
    "kind",
    "run",
    "seed",
    "bar",
    "date",
    "ticker",
    "weight",
    "shares",
    "traded_shares",
    "contribution",
)
#: Costs and capital: identical for every agent and benchmark of one ledger.
SETUP_KEYS = ("initial_capital", "commission_bps", "slippage_bps", "borrow_bps_per_bar")


def _seeds(run: PortfolioRun, seeds: Sequence[int], run_name: str) -> np.ndarray:
    seeds = np.asarray(list(seeds), dtype=np.int64)
    if seeds.shape != (run.n_lanes,):
        raise PortfolioInputError(
            f"run {run_name!r}: {len(seeds)} seeds given for {run.n_lanes} lanes; pass one seed per lane"
        )
    return seeds


def _kinds(kind: str, seeds: np.ndarray) -> np.ndarray:
    """An agent's ensemble lane (``ENSEMBLE_SEED``) is kind ``ensemble``, as in evaluation.backtests."""
    if kind == "agent":
        return np.where(seeds == ENSEMBLE_SEED, "ensemble", kind)
    return np.full(seeds.shape, kind, dtype=object)


def run_ledger(
    run: PortfolioRun, kind: str, run_name: str, seeds: Sequence[int], split: str = "test"
) -> pd.DataFrame:
    """The replay's lanes as long ledger rows (:data:`RUN_LEDGER_COLUMNS`); lane i is ``seeds[i]``."""
    seed_of_lane = _seeds(run, seeds, run_name)
    frame = run.frame()
    lanes = frame.pop("lane").to_numpy()
    frame["n_fills"] = (run.traded_shares != 0).sum(axis=2).ravel()
    frame.insert(0, "seed", seed_of_lane[lanes])
    frame.insert(0, "run", str(run_name))
    frame.insert(0, "kind", _kinds(str(kind), seed_of_lane)[lanes])
    frame.insert(0, "split", str(split))
    frame["kind"] = frame["kind"].astype(str)
    return frame[list(RUN_LEDGER_COLUMNS)]


def weights_ledger(run: PortfolioRun, kind: str, run_name: str, seeds: Sequence[int]) -> pd.DataFrame:
    """One row per lane, bar and ticker (:data:`WEIGHTS_LEDGER_COLUMNS`); the cash weight is
    ``1 - sum(weight)`` (``cash / equity`` of the run ledger)."""
    seed_of_lane = _seeds(run, seeds, run_name)
    L, S1, N = run.weights.shape
    held = run.shares[:, :-1, :]
    move = np.nan_to_num(run.close[1:] - run.close[:-1], nan=0.0)[None]
    contribution = np.concatenate([np.zeros((L, 1, N)), held * move], axis=1)
    shape = (L, S1, N)
    lane = np.broadcast_to(np.arange(L)[:, None, None], shape).ravel()
    bar = np.broadcast_to(run.bars[None, :, None], shape).ravel()
    step = np.broadcast_to(np.arange(S1)[None, :, None], shape).ravel()
    ticker = np.broadcast_to(np.arange(N)[None, None, :], shape).ravel()
    return pd.DataFrame(
        {
            "kind": _kinds(str(kind), seed_of_lane)[lane].astype(str),
            "run": str(run_name),
            "seed": seed_of_lane[lane],
            "bar": bar,
            "date": run.dates.to_numpy()[step],
            "ticker": np.asarray(run.tickers, dtype=object)[ticker],
            "weight": run.weights.ravel(),
            "shares": run.shares.ravel(),
            "traded_shares": run.traded_shares.ravel(),
            "contribution": contribution.ravel(),
        }
    )


def _setup(run: PortfolioRun) -> dict:
    c = run.config
    return {k: float(getattr(c, k)) for k in SETUP_KEYS}


def portfolio_ledger(
    runs: Iterable[tuple[str, str, Sequence[int], PortfolioRun]], split: str = "test"
) -> pd.DataFrame:
    """Every ``(kind, name, seeds, run)`` of a split in one long ledger. Refuses runs whose costs or
    capital differ, or that do not cover the same dates: agents and benchmarks are compared on one
    setup and the same bars."""
    runs = list(runs)
    if not runs:
        raise PortfolioInputError(f"{split}: no portfolio runs to put in a ledger")
    ref_kind, ref_name, _, ref = runs[0]
    for kind, name, _, run in runs[1:]:
        a, b = _setup(ref), _setup(run)
        diff = [k for k in SETUP_KEYS if a[k] != b[k]]
        if diff:
            k = diff[0]
            raise PortfolioInputError(
                f"{split}: run {name!r} ({kind}) used {k}={b[k]} but {ref_name!r} ({ref_kind}) used {a[k]}; "
                "agents and benchmarks must be replayed with one environment"
            )
        if not run.dates.equals(ref.dates):
            raise PortfolioInputError(
                f"{split}: run {name!r} ({kind}) covers {run.dates[0].date()} .. {run.dates[-1].date()} "
                f"({len(run.dates)} bars) but {ref_name!r} covers {ref.dates[0].date()} .. "
                f"{ref.dates[-1].date()} ({len(ref.dates)}); replay every run on the same panel window"
            )
    return pd.concat(
        [run_ledger(run, kind, name, seeds, split) for kind, name, seeds, run in runs], ignore_index=True
    )


def _one(frame: pd.DataFrame, run: str, seed: int, what: str) -> pd.DataFrame:
    sel = frame[(frame["run"] == run) & (frame["seed"] == seed)]
    if sel.empty:
        raise PortfolioInputError(f"{what}: no rows for run {run!r} seed {seed}")
    return sel


def weights_wide(weights: pd.DataFrame, run: str, seed: int = 0) -> pd.DataFrame:
    """Date x ticker weights of one run and seed from :func:`weights_ledger`, plus ``cash``
    (``1 - sum``) as the last column: what ``PortfolioRun.weights_frame`` gives for a lane."""
    sel = _one(weights, run, seed, "weights ledger")
    wide = sel.pivot(index="date", columns="ticker", values="weight")
    wide = wide[list(dict.fromkeys(sel["ticker"]))]
    wide["cash"] = 1.0 - wide.sum(axis=1)
    wide.columns.name = None
    return wide


def contributions_wide(weights: pd.DataFrame, ledger: pd.DataFrame, run: str, seed: int = 0) -> pd.DataFrame:
    """Date x ticker contributions of one run and seed (``weights_ledger``) with ``costs`` (minus
    the run ledger's ``cost``) as the last column, start row dropped: what
    ``PortfolioRun.contributions`` gives for a lane."""
    sel = _one(weights, run, seed, "weights ledger")
    wide = sel.pivot(index="date", columns="ticker", values="contribution")
    wide = wide[list(dict.fromkeys(sel["ticker"]))]
    cost = _one(ledger, run, seed, "run ledger").set_index("date")["cost"]
    wide["costs"] = -cost.reindex(wide.index).to_numpy(dtype=float)
    wide.columns.name = None
    return wide.iloc[1:]
