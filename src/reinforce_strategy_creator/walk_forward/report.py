"""The walk-forward tear sheet: one self-contained HTML page that reads top to bottom.

First screen: the verdict and why, one side-by-side table (the procedure, each agent and each
benchmark as columns, the key metrics as rows) and the stitched equity chart. Then the details
in that order: the gate's rules, the folds, per-fold Sharpe, selection effort (PBO, DSR), the
trading setup and caveats. Raw JSON stays in its files (``walk_forward_verdict.json``).
Tables and figures reuse the evaluation report's formatting and macros (``evaluation.report``);
the page is ``templates/walk_forward_report.html.j2``, rendered with every value escaped
(:mod:`..rendering`). :func:`walk_forward_context` is the template's data, which the portfolio
tear sheet extends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..evaluation.report import _fmt, figure_to_base64_png, gate_context, table_context
from ..rendering import render_html

__all__ = ["fold_sharpe_figure", "render_walk_forward_report", "side_by_side", "walk_forward_context"]

#: rows of the side-by-side table: (metric column, label)
KEY_METRICS = (
    ("total_return", "total return"),
    ("annual_return", "annual return"),
    ("sharpe", "Sharpe"),
    ("sortino", "Sortino"),
    ("max_drawdown", "max drawdown"),
    ("annual_volatility", "volatility"),
    ("psr", "PSR vs buy-and-hold"),
    ("n_trades", "trades"),
    ("exposure", "exposure"),
    ("total_costs", "costs paid"),
)
BENCHMARK_ORDER = ("buy_and_hold", "sma_crossover", "momentum", "flat")


def side_by_side(records: pd.DataFrame) -> pd.DataFrame:
    """Key metrics (rows) of the procedure, each agent's validation-best seed per fold, each
    benchmark and the random policies' median (columns), all on the stitched bars."""
    columns: dict[str, pd.Series] = {}
    proc = records[records["kind"] == "procedure"]
    if not proc.empty:
        columns["procedure"] = proc.iloc[0]
    for _, row in records[records["kind"] == "agent_selected"].sort_values("agent").iterrows():
        columns[str(row["agent"])] = row
    bench = records[records["kind"] == "benchmark"].set_index("agent")
    others = sorted(set(bench.index) - set(BENCHMARK_ORDER))  # e.g. the portfolio's equal_weight, index
    for name in (*BENCHMARK_ORDER, *others):
        if name in bench.index:
            columns[name] = bench.loc[name]
    random = records[records["kind"] == "random"]
    if not random.empty:
        columns["random (median)"] = random.median(numeric_only=True)
    rows = []
    for col, label in KEY_METRICS:
        rows.append({"metric": label, **{name: s.get(col, np.nan) for name, s in columns.items()}})
    return pd.DataFrame(rows)


def _cell(col: str, v: Any) -> str:
    if col == "n_trades" and isinstance(v, (int, float, np.number)) and np.isfinite(v):
        return f"{float(v):g}"
    if col == "total_costs" and isinstance(v, (int, float, np.number)) and np.isfinite(v):
        return f"{float(v):,.2f}"
    return _fmt(col, v)


def _side_by_side_context(table: pd.DataFrame) -> dict[str, Any]:
    keys = {label: col for col, label in KEY_METRICS}
    rows = table.to_dict("records")
    return {
        "columns": [str(c) for c in table.columns],
        "rows": [
            {
                "ruined": False,
                "cells": [str(v) if c == "metric" else _cell(keys[r["metric"]], v) for c, v in r.items()],
            }
            for r in rows
        ],
    }


def fold_sharpe_figure(folds: pd.DataFrame) -> Figure:
    """Per-fold test Sharpe of the procedure against buy-and-hold (bars side by side)."""
    fig, ax = plt.subplots(figsize=(10, 3.2), layout="constrained")
    x = np.arange(len(folds))
    ax.bar(x - 0.2, folds["procedure_test_sharpe"], 0.4, label="procedure")
    ax.bar(x + 0.2, folds["buy_and_hold_test_sharpe"], 0.4, label="buy_and_hold", color="0.6")
    ax.set_xticks(x, [str(v) for v in folds["label"]])
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("test Sharpe")
    ax.set_title("Test Sharpe per fold")
    ax.legend(fontsize=8)
    return fig


def _why(verdict: Mapping[str, Any]) -> str:
    rules = verdict.get("rules") or {}
    failed = [name for name, r in rules.items() if not r.get("passed")]
    if verdict.get("passed"):
        return "every rule of the gate holds on the stitched out-of-sample record."
    if not rules:
        return str(verdict.get("reason") or "no record to judge")
    parts = []
    for n in failed:
        rule = rules[n]
        needs = f"{rule.get('comparison')} {_fmt(n, rule.get('threshold'))}"
        parts.append(f"{n} {_fmt(n, rule.get('value'))} (needs {needs})")
    return "failed " + "; ".join(parts) + "."


def _folds(folds: pd.DataFrame) -> pd.DataFrame:
    return folds.rename(
        columns={
            "procedure_test_sharpe": "test Sharpe",
            "procedure_test_return": "test return",
            "buy_and_hold_test_sharpe": "B&H Sharpe",
            "buy_and_hold_test_return": "B&H return",
            "validation_sharpe": "validation Sharpe",
        }
    ).drop(columns=["fold"], errors="ignore")


def _effort(verdict: Mapping[str, Any]) -> dict[str, str]:
    pbo, dsr, sel = verdict.get("pbo") or {}, verdict.get("dsr") or {}, verdict.get("selection") or {}
    defl = verdict.get("deflation") or {}
    return {
        "pbo_candidates": str(pbo.get("n_candidates")),
        "pbo_combinations": str(pbo.get("n_combinations")),
        "pbo": _fmt("psr", pbo.get("pbo")),
        "pbo_reason": str(pbo.get("reason") or ""),
        "dsr_trials": str(dsr.get("n_trials")),
        "dsr": _fmt("dsr", dsr.get("value")),
        "n_configurations": str(defl.get("n_configurations")),
        "tuning_trials": str(sel.get("tuning_trials", 0)),
        "checkpoint_evaluations": str(sel.get("checkpoint_evaluations")),
        "rule": str(sel.get("rule")),
    }


def walk_forward_context(
    verdict: Mapping[str, Any],
    records: pd.DataFrame,
    folds: pd.DataFrame,
    equity: Figure,
    trading_setup: Mapping[str, Any],
    *,
    subject: str = "one instrument",
) -> dict[str, Any]:
    """The tear sheet's data for ``walk_forward_report.html.j2``: text cells and base64 PNGs."""
    status = "PASSED" if verdict.get("passed") else "FAILED"
    on = verdict.get("decided_on") or {}
    equity.set_size_inches(10, 3.4)  # the chart belongs to the first screen
    return {
        "status": status,
        "why": _why(verdict),
        "span": f"{on.get('start')} .. {on.get('end')}, {on.get('n_bars')} bars, {len(folds)} folds",
        "side_by_side": _side_by_side_context(side_by_side(records)),
        "equity_png": figure_to_base64_png(equity),
        "gate": gate_context(verdict),
        "folds": table_context(_folds(folds)),
        "per_fold_png": figure_to_base64_png(fold_sharpe_figure(folds)),
        "effort": _effort(verdict),
        "trading_setup": table_context(pd.DataFrame([dict(trading_setup)])),
        "subject": str(subject),
    }


def render_walk_forward_report(
    verdict: Mapping[str, Any],
    records: pd.DataFrame,
    folds: pd.DataFrame,
    equity: Figure,
    trading_setup: Mapping[str, Any],
    *,
    subject: str = "one instrument",
) -> str:
    """The tear sheet's HTML (write it with a text dataset)."""
    context = walk_forward_context(verdict, records, folds, equity, trading_setup, subject=subject)
    return render_html("walk_forward_report.html.j2", **context)
