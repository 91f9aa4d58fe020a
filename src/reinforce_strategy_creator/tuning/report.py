"""The optimisation-history figure of a study."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

__all__ = ["history_figure"]


def history_figure(trials: pd.DataFrame, summary: Mapping[str, Any]) -> Figure:
    """Each complete trial's objective (mean validation Sharpe), the best so far, and each pruned
    trial at its last reported running mean."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    done = trials[trials["state"] == "COMPLETE"].sort_values("number")
    pruned = trials[trials["state"] == "PRUNED"]
    ax.plot(done["number"], done["value"], "o", color="C0", label="complete trial")
    if not pruned.empty:
        ax.plot(
            pruned["number"], pruned["last_intermediate"], "x", color="0.5", label="pruned (running mean)"
        )
    if not done.empty:
        ax.step(done["number"], done["value"].cummax(), where="post", color="C3", label="best so far")
    windows = summary.get("validation_windows") or []
    span = f"{windows[0]['start']} .. {windows[-1]['end']}" if windows else ""
    ax.set_title(f"Study {summary.get('study_name')} ({summary.get('agent')}): validation windows {span}")
    ax.set_xlabel("trial")
    ax.set_ylabel("mean validation Sharpe")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig
