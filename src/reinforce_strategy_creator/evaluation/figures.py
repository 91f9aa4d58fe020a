"""Evaluation figures as matplotlib ``Figure`` objects.

What: equity curves (log scale), drawdowns, positions over price with entries/exits,
rolling Sharpe, the random-policy Sharpe distribution with agents marked, and learning
curves from training histories.

Why this way: figures are built with the object API (``matplotlib.figure.Figure`` on an Agg
canvas), never ``pyplot``, so no global state or GUI backend is involved, nothing leaks
between calls, and the caller (Kedro ``MatplotlibDataset`` or ``report.py``) decides where
they go. Each function takes plain pandas inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .metrics import EvaluationInputError, ruin_index

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "equity_curves_figure",
    "drawdowns_figure",
    "positions_figure",
    "rolling_sharpe_figure",
    "random_sharpe_figure",
    "learning_curves_figure",
]


def _figure(figsize) -> Figure:
    """An empty figure (constrained layout) on an Agg canvas."""
    # imported on the first figure: a walk-forward fold's worker computes metrics and draws none
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _new(figsize=(10, 4.5)) -> tuple[Figure, object]:
    fig = _figure(figsize)
    return fig, fig.add_subplot(1, 1, 1)


def _check_curves(curves: Mapping[str, pd.Series], name: str):
    if not curves:
        raise EvaluationInputError(f"{name}: need at least one named series to plot.")
    for label, s in curves.items():
        if not isinstance(s, pd.Series) or s.empty:
            raise EvaluationInputError(f"{name}['{label}']: expected a non-empty pandas Series.")


def _until_ruin(s: pd.Series) -> tuple[pd.Series, int | None]:
    """A curve up to and including its bar of ruin (``metrics.ruin_index``) and that row."""
    k = ruin_index(s)
    return (s if k is None else s.iloc[: k + 1]), k


def _when(x) -> str:
    return str(x.date()) if isinstance(x, pd.Timestamp) else str(x)


def equity_curves_figure(
    curves: Mapping[str, pd.Series], benchmarks: Sequence[str] = (), log: bool = True, title: str = "Equity"
) -> Figure:
    """Equity of each agent and benchmark on one axis (log scale by default). Names listed
    in ``benchmarks`` are drawn dashed so agents stand out.

    A ruined curve (equity reaching zero or below) is drawn up to its bar of ruin, marked
    with an ``x`` and a dotted vertical line there and labelled "RUINED <date>"; on a log
    scale, where zero cannot be drawn, the line stops at its last positive value and the
    ``x`` sits at the bottom edge.
    """
    _check_curves(curves, "curves")
    fig, ax = _new()
    ruins = []
    for label, curve in curves.items():
        s, k = _until_ruin(curve)
        if k == 0 and log:
            raise EvaluationInputError(f"curves['{label}']: equity must start positive for a log-scale plot.")
        shown = s.iloc[:k] if (k is not None and log) else s
        name = label if k is None else f"{label} — RUINED {_when(s.index[k])}"
        (line,) = ax.plot(
            shown.index,
            shown.to_numpy(dtype=float),
            label=name,
            lw=1.2,
            ls="--" if label in benchmarks else "-",
        )
        if k is not None:
            ruins.append((s.index[k], float(s.iloc[k]), line.get_color()))
    if log:
        ax.set_yscale("log")
    for x, y, color in ruins:
        ax.axvline(x, color=color, ls=":", lw=0.8)
        if log:
            ax.plot(
                [x],
                [0.0],
                marker="x",
                ms=9,
                mew=2,
                color=color,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                ls="none",
            )
        else:
            ax.plot([x], [y], marker="x", ms=9, mew=2, color=color, ls="none")
    ax.set_title(title)
    ax.set_ylabel("equity" + (" (log scale)" if log else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    return fig


def drawdowns_figure(curves: Mapping[str, pd.Series], title: str = "Drawdown from running peak") -> Figure:
    """Drawdown ``equity / running max - 1`` of each curve; a ruined curve is drawn up to its
    bar of ruin, where its drawdown is -100 % (a deficit below zero is not drawn below -100 %)."""
    _check_curves(curves, "curves")
    fig, ax = _new()
    for label, curve in curves.items():
        s, k = _until_ruin(curve)
        v = s.to_numpy(dtype=float)
        dd = np.maximum(v / np.maximum.accumulate(v) - 1.0, -1.0)
        ax.plot(s.index, dd, label=label if k is None else f"{label} — RUINED", lw=1.0)
    ax.set_title(title)
    ax.set_ylabel("drawdown")
    ax.yaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    return fig


def positions_figure(close: pd.Series, position: pd.Series, title: str = "Positions over price") -> Figure:
    """Close price with the held position shaded below, entries (^) and exits (v) marked.

    ``position`` is aligned to ``close`` by index; an entry is a bar where the position
    goes from 0 (or the opposite sign) to non-zero, an exit where it returns to 0 or flips.
    """
    if not isinstance(close, pd.Series) or not isinstance(position, pd.Series):
        raise EvaluationInputError("close/position: expected pandas Series indexed by date.")
    pos = position.reindex(close.index)
    if pos.isna().any():
        raise EvaluationInputError(
            f"position: no position for date {pos.index[pos.isna()][0]} of the close series; "
            "pass close and position over the same bars."
        )
    fig = _figure((10, 5.5))
    ax, axp = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot(close.index, close.to_numpy(dtype=float), color="0.3", lw=1.0, label="close")
    sign = np.sign(pos.to_numpy(dtype=float))
    prev = np.concatenate([[0.0], sign[:-1]])
    entries = (sign != 0) & (sign != prev)
    exits = (prev != 0) & (sign != prev)
    ax.scatter(
        close.index[entries],
        close.to_numpy()[entries],
        marker="^",
        color="tab:green",
        s=30,
        label="entry",
        zorder=3,
    )
    ax.scatter(
        close.index[exits], close.to_numpy()[exits], marker="v", color="tab:red", s=30, label="exit", zorder=3
    )
    ax.set_title(title)
    ax.set_ylabel("price")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    axp.fill_between(pos.index, pos.to_numpy(dtype=float), step="post", alpha=0.5)
    axp.set_ylabel("position")
    axp.grid(True, alpha=0.3)
    return fig


def rolling_sharpe_figure(
    returns: Mapping[str, pd.Series], window: int, periods_per_year: float, title: str | None = None
) -> Figure:
    """Annualised Sharpe over a trailing window of ``window`` bars (risk-free 0, ddof=1).
    Returns below -100 % (the bar of ruin of an account left with negative equity) count as
    -100 %, as in the metrics; nothing is drawn after it."""
    _check_curves(returns, "returns")
    if window < 2:
        raise EvaluationInputError(f"evaluation.rolling_window: must be >= 2 bars, got {window!r}.")
    fig, ax = _new()
    for label, lane in returns.items():
        k = ruin_index(np.cumprod(1.0 + lane.to_numpy(dtype=float)))
        r = lane if k is None else lane.iloc[: k + 1].clip(lower=-1.0)
        roll = r.rolling(window)
        ax.plot(r.index, roll.mean() / roll.std(ddof=1) * np.sqrt(periods_per_year), label=label, lw=1.0)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_title(title or f"Rolling Sharpe ({window} bars, annualised)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    return fig


def random_sharpe_figure(
    random_sharpes: Sequence[float],
    agent_sharpes: Mapping[str, float],
    title: str = "Random-policy Sharpe distribution",
) -> Figure:
    """Histogram of random-policy Sharpes with each agent's Sharpe as a vertical line."""
    d = np.asarray(list(random_sharpes), dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise EvaluationInputError("random_sharpes: no finite Sharpe ratios to plot.")
    fig, ax = _new()
    ax.hist(
        d, bins=max(10, int(np.sqrt(d.size))), color="0.7", edgecolor="0.4", label=f"random ({d.size} seeds)"
    )
    colors = [f"C{i}" for i in range(10)]
    for i, (label, s) in enumerate(agent_sharpes.items()):
        if s is not None and np.isfinite(s):
            pct = 100.0 * (np.mean(d < s) + 0.5 * np.mean(d == s))
            ax.axvline(s, color=colors[i % 10], lw=1.5, label=f"{label}: {s:.2f} ({pct:.0f}th pct)")
    ax.set_title(title)
    ax.set_xlabel("annualised Sharpe")
    ax.set_ylabel("seeds")
    ax.legend(fontsize=8)
    return fig


def learning_curves_figure(
    histories: Mapping[str, pd.DataFrame],
    x: str = "step",
    y: Sequence[str] = ("episode_return", "eval_score"),
) -> Figure:
    """One panel per column in ``y`` (those present), one line per run (e.g. ``ppo/seed 1``).
    Missing values (eval rows only every K steps) are skipped, not interpolated."""
    if not histories:
        raise EvaluationInputError("histories: need at least one training history.")
    present = [c for c in y if any(c in h.columns for h in histories.values())]
    if not present:
        raise EvaluationInputError(f"histories: none of the columns {list(y)} is present in any history.")
    for name, h in histories.items():
        if x not in h.columns:
            raise EvaluationInputError(f"histories['{name}']: missing column '{x}'.")
    fig = _figure((10, 3.2 * len(present)))
    axes = np.atleast_1d(fig.subplots(len(present), 1, sharex=True))
    for ax, col in zip(axes, present):
        for name, h in histories.items():
            if col in h.columns:
                sub = h[[x, col]].dropna()
                ax.plot(sub[x].to_numpy(), sub[col].to_numpy(dtype=float), label=name, lw=1.0)
        ax.set_ylabel(col)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncols=3)
    axes[-1].set_xlabel(x)
    axes[0].set_title("Learning curves")
    return fig
