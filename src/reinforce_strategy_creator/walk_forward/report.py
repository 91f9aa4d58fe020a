"""The walk-forward tear sheet: one self-contained HTML page that reads top to bottom.

First screen: the verdict and why, one side-by-side table (the procedure, each agent and each
benchmark as columns, the key metrics as rows) and the stitched equity chart. Then the details
in that order: the gate's rules, the folds, per-fold Sharpe, selection effort (PBO, DSR), the
trading setup and caveats. Raw JSON stays in its files (``walk_forward_verdict.json``).
Tables and figures reuse the evaluation report's formatting (``evaluation.report``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..evaluation.report import _CSS, _fmt, _table_html, _verdict_html, figure_to_base64_png

__all__ = ["fold_sharpe_figure", "render_walk_forward_report", "side_by_side"]

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


def _side_by_side_html(table: pd.DataFrame) -> str:
    keys = {label: col for col, label in KEY_METRICS}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v)) if c == 'metric' else _cell(keys[r['metric']], v)}</td>"
            for c, v in r.items()
        )
        + "</tr>"
        for r in table.to_dict("records")
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


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
        return html.escape(str(verdict.get("reason") or "no record to judge"))
    parts = []
    for n in failed:
        rule = rules[n]
        needs = f"{html.escape(str(rule.get('comparison')))} {_fmt(n, rule.get('threshold'))}"
        parts.append(f"{html.escape(n)} {_fmt(n, rule.get('value'))} (needs {needs})")
    return "failed " + "; ".join(parts) + "."


def _folds_html(folds: pd.DataFrame) -> str:
    shown = folds.rename(
        columns={
            "procedure_test_sharpe": "test Sharpe",
            "procedure_test_return": "test return",
            "buy_and_hold_test_sharpe": "B&H Sharpe",
            "buy_and_hold_test_return": "B&H return",
            "validation_sharpe": "validation Sharpe",
        }
    ).drop(columns=["fold"], errors="ignore")
    return _table_html(shown)


def _effort_html(verdict: Mapping[str, Any]) -> str:
    pbo, dsr, sel = verdict.get("pbo") or {}, verdict.get("dsr") or {}, verdict.get("selection") or {}
    defl = verdict.get("deflation") or {}
    items = [
        f"Probability of backtest overfitting (CSCV over {pbo.get('n_candidates')} agent × seed "
        f"candidates, {pbo.get('n_combinations')} splits): <b>{_fmt('psr', pbo.get('pbo'))}</b>"
        + (f" ({html.escape(str(pbo['reason']))})" if pbo.get("reason") else ""),
        f"Deflated Sharpe ratio of the procedure over {dsr.get('n_trials')} stitched trials: "
        f"<b>{_fmt('dsr', dsr.get('value'))}</b>",
        f"PSR deflated for {defl.get('n_configurations')} configuration(s) tried on this window "
        f"(earlier gate decisions' configurations, this one, and {sel.get('tuning_trials', 0)} "
        "hyperparameter-study trial(s) whose validation windows overlap it)",
        f"Checkpoint evaluations on the folds' validation windows: {sel.get('checkpoint_evaluations')}; "
        f"champion rule: {html.escape(str(sel.get('rule')))}",
    ]
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def render_walk_forward_report(
    verdict: Mapping[str, Any],
    records: pd.DataFrame,
    folds: pd.DataFrame,
    equity: Figure,
    trading_setup: Mapping[str, Any],
    *,
    extra_html: str = "",
    subject: str = "one instrument",
) -> str:
    """The tear sheet's HTML (write it with a text dataset); ``extra_html`` (e.g. the portfolio's
    weights, turnover and contribution) goes after the stitched equity."""
    e = html.escape
    status = "PASSED" if verdict.get("passed") else "FAILED"
    on = verdict.get("decided_on") or {}
    span = f"{on.get('start')} .. {on.get('end')}, {on.get('n_bars')} bars, {len(folds)} folds"
    per_fold = figure_to_base64_png(fold_sharpe_figure(folds))
    equity.set_size_inches(10, 3.4)  # the chart belongs to the first screen
    return "".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>Walk-forward: {status}</title><style>{_CSS}</style></head><body>",
            f"<h1>Walk-forward verdict: <span class='verdict {status.lower()}'>{status}</span></h1>",
            f"<p><b>Why:</b> {_why(verdict)}</p>",
            f"<p class='note'>Decided on the procedure's stitched record ({e(span)}): each fold's "
            "champion, chosen on its validation year, trading its test year; one account across the "
            "folds; the same costs and capital for every column.</p>",
            _side_by_side_html(side_by_side(records)),
            f"<img alt='stitched equity' src='data:image/png;base64,{figure_to_base64_png(equity)}'>",
            extra_html,
            "<h2>Gate rules on the stitched record</h2>" + _verdict_html(verdict),
            "<h2>Folds</h2>" + _folds_html(folds),
            f"<img alt='per-fold Sharpe' src='data:image/png;base64,{per_fold}'>",
            "<h2>Selection effort</h2>" + _effort_html(verdict),
            "<h2>Trading setup (identical for every column)</h2>"
            + _table_html(pd.DataFrame([dict(trading_setup)])),
            f"<h2>Caveats</h2><ul><li>Past out-of-sample performance on {e(subject)} is not a "
            "forecast.</li><li>Fills are simulated at the next bar (environment.fill_price) with the "
            "configured commission and slippage; no market impact.</li><li>Full figures: "
            "walk_forward_metrics.csv, walk_forward_folds.csv, walk_forward_verdict.json.</li></ul>",
            "</body></html>",
        ]
    )
