"""Portfolio report figures as matplotlib ``Figure`` objects (style of ``evaluation.figures``).

* :func:`weights_figure` — one account's weights over time as a stacked area, cash included;
* :func:`turnover_figure` — turnover per period (traded notional / mean equity) of several runs;
* :func:`contribution_figure` — per-asset profit contribution (summed
  ``PortfolioRun.contributions``), costs as their own bar; the bars add up to the equity change.

Each takes a :class:`~.replay.PortfolioRun` (and a lane) or the plain pandas frame it stands for
(``PortfolioRun.weights_frame`` / ``.contributions``, or ``ledger.weights_wide`` /
``contributions_wide`` / ``run_ledger`` rows read back from Parquet), builds the figure with the
object API on an Agg canvas (no ``pyplot`` state) and returns it; the caller decides where it
goes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..evaluation.metrics import EvaluationInputError, ruin_index
from .replay import PortfolioRun

__all__ = ["contribution_figure", "turnover_figure", "turnover_series", "weights_figure"]

_FREQ = {"W": "W", "M": "ME", "Q": "QE", "Y": "YE"}


def _new(figsize=(10, 4.5)) -> tuple[Figure, object]:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _colors(n: int) -> list:
    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def _lane(run: PortfolioRun, lane: int, what: str) -> None:
    if not (isinstance(lane, (int, np.integer)) and 0 <= lane < run.n_lanes):
        raise EvaluationInputError(f"{what}: lane {lane!r} is not one of the run's {run.n_lanes} lanes")


def weights_figure(
    weights: PortfolioRun | pd.DataFrame, lane: int = 0, title: str = "Weights over time"
) -> Figure:
    """Weights at each bar's mark as a stacked area (tickers in column order, ``cash`` on top).

    ``weights``: a run (its ``weights_frame(lane)``) or a date x (tickers..., ``cash``) frame
    whose rows add up to 1. A ruined account is drawn up to its bar of ruin (weights are
    undefined once equity is <= 0). A book with short positions cannot be stacked: its weights
    are drawn as lines instead, and the title says so.
    """
    if isinstance(weights, PortfolioRun):
        _lane(weights, lane, "weights")
        k = ruin_index(weights.equity[lane])
        frame = weights.weights_frame(lane)
        frame = frame if k is None else frame.iloc[:k]
    elif isinstance(weights, pd.DataFrame):
        frame = weights
    else:
        raise EvaluationInputError(
            f"weights: expected a PortfolioRun or a date x ticker frame, got {type(weights).__name__}"
        )
    if frame.empty or "cash" not in frame.columns:
        raise EvaluationInputError(
            "weights: need a non-empty date x ticker frame with a 'cash' column "
            "(PortfolioRun.weights_frame or evaluation.ledger.weights_wide)"
        )
    values = frame.to_numpy(dtype=float)
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise EvaluationInputError(f"weights: row {row} ({frame.index[row]}) has a missing weight")
    fig, ax = _new((10, 5))
    colors = _colors(frame.shape[1] - 1) + ["0.85"]
    labels = [str(c) for c in frame.columns]
    if (values < -1e-12).any():
        for j, label in enumerate(labels):
            ax.plot(frame.index, values[:, j], label=label, color=colors[j], lw=1.0)
        ax.axhline(0, color="k", lw=0.6)
        title = f"{title} (long/short: lines, not stacked)"
    else:
        ax.stackplot(frame.index, np.clip(values, 0.0, None).T, labels=labels, colors=colors, step="post")
        ax.set_ylim(0, max(1.0, float(values.sum(axis=1).max())))
    ax.set_title(title)
    ax.set_ylabel("weight of equity")
    ax.yaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
    ax.margins(x=0)
    ax.legend(fontsize=7, ncols=1 + frame.shape[1] // 12, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def turnover_series(ledger: PortfolioRun | pd.DataFrame, lane: int = 0, freq: str = "M") -> pd.Series:
    """Turnover per calendar period (``freq``: W, M, Q or Y): the traded notional of the bars in
    the period over their mean equity (bars with positive equity). ``ledger``: a run (lane
    ``lane``) or one run and seed of a ``run_ledger`` (date, traded_notional, equity)."""
    if freq not in _FREQ:
        raise EvaluationInputError(f"freq: must be one of {sorted(_FREQ)}, got {freq!r}")
    if isinstance(ledger, PortfolioRun):
        _lane(ledger, lane, "turnover")
        frame = pd.DataFrame(
            {"traded_notional": ledger.traded_notional[lane], "equity": ledger.equity[lane]},
            index=ledger.dates,
        )
    elif isinstance(ledger, pd.DataFrame) and {"date", "traded_notional", "equity"} <= set(ledger.columns):
        if {"run", "seed"} <= set(ledger.columns) and len(ledger.groupby(["run", "seed"])) > 1:
            raise EvaluationInputError("turnover: the ledger holds several runs or seeds; pass one of them")
        frame = ledger.set_index(pd.DatetimeIndex(ledger["date"].to_numpy()))[["traded_notional", "equity"]]
    else:
        raise EvaluationInputError(
            "turnover: expected a PortfolioRun or a run ledger with date, traded_notional and equity columns"
        )
    frame = frame.iloc[1:]  # the start row trades nothing
    alive = frame["equity"].where(frame["equity"] > 0)
    grouped = pd.DataFrame({"traded": frame["traded_notional"], "equity": alive}).resample(_FREQ[freq])
    out = grouped["traded"].sum() / grouped["equity"].mean()
    return out.dropna().rename("turnover")


def turnover_figure(
    runs: Mapping[str, PortfolioRun | pd.DataFrame], freq: str = "M", title: str | None = None
) -> Figure:
    """Turnover per period (``turnover_series``) of each named run (its lane 0, or a one-seed
    ledger), one line each."""
    if not runs:
        raise EvaluationInputError("runs: need at least one run to plot turnover")
    fig, ax = _new()
    for label, source in runs.items():
        s = turnover_series(source, 0, freq)
        ax.plot(s.index, s.to_numpy(dtype=float), label=str(label), lw=1.0, marker=".", ms=3)
    names = {"W": "week", "M": "month", "Q": "quarter", "Y": "year"}
    ax.set_title(title or f"Turnover per {names[freq]} (traded notional / mean equity)")
    ax.set_ylabel("turnover")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    return fig


def contribution_figure(
    contributions: PortfolioRun | pd.DataFrame, lane: int = 0, title: str = "Contribution by asset"
) -> Figure:
    """Profit of each asset over the run (summed ``PortfolioRun.contributions``: shares held times
    close changes, before costs) as bars, largest first, and all costs as their own bar; the bars
    add up to the equity change, shown in the title.

    ``contributions``: a run (lane ``lane``) or a date x (tickers..., ``costs``) frame
    (``PortfolioRun.contributions`` or ``evaluation.ledger.contributions_wide``)."""
    if isinstance(contributions, PortfolioRun):
        _lane(contributions, lane, "contributions")
        frame = contributions.contributions(lane)
    elif isinstance(contributions, pd.DataFrame):
        frame = contributions
    else:
        raise EvaluationInputError(
            "contributions: expected a PortfolioRun or a date x ticker frame, got "
            f"{type(contributions).__name__}"
        )
    if frame.empty or "costs" not in frame.columns:
        raise EvaluationInputError(
            "contributions: need a non-empty date x ticker frame with a 'costs' column "
            "(PortfolioRun.contributions or evaluation.ledger.contributions_wide)"
        )
    totals = frame.drop(columns="costs").sum().sort_values(ascending=False)
    costs = float(frame["costs"].sum())
    values = np.append(totals.to_numpy(dtype=float), costs)
    labels = [str(t) for t in totals.index] + ["costs"]
    fig, ax = _new((max(6.0, 0.45 * len(values) + 2), 4.5))
    colors = ["tab:green" if v >= 0 else "tab:red" for v in values[:-1]] + ["0.4"]
    ax.bar(np.arange(len(values)), values, color=colors)
    ax.set_xticks(np.arange(len(values)), labels, rotation=60, ha="right", fontsize=8)
    ax.axhline(0, color="k", lw=0.6)
    ax.annotate(f"{costs:,.0f}", (len(values) - 1, costs), ha="center", va="top", fontsize=7)
    ax.set_title(f"{title} — equity change {values.sum():,.2f}")
    ax.set_ylabel("profit (account currency)")
    ax.grid(True, axis="y", alpha=0.3)
    return fig
