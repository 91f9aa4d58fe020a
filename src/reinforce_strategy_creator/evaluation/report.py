"""Self-contained HTML evaluation report, plus CSV/JSON-ready metric tables.

What: one HTML file that opens offline (inline CSS, figures embedded as base64 PNG, no
JavaScript, no external links needed) and reads without the code: what was tested, the data
periods, the trading setup (costs and capital, identical for every agent and benchmark),
metric tables, cross-seed statistics, the gate verdict, the champion and caveats.

How: this module turns the results into data (formatted text cells, base64 PNGs) and the
template ``templates/evaluation_report.html.j2`` lays them out (:mod:`..rendering`: Jinja2 with
autoescaping, so an agent name, a parameter value or a reason cannot become markup).
:func:`table_context`, :func:`kv_context` and :func:`gate_context` build the shared pieces the
walk-forward tear sheet lays out with the same macros.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..rendering import render_html
from .metrics import EvaluationInputError, json_safe

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_CAVEATS",
    "METRIC_COLUMNS",
    "check_identical_setup",
    "figure_to_base64_png",
    "gate_context",
    "kv_context",
    "metrics_table",
    "table_context",
    "table_to_json",
    "render_html_report",
]

METRIC_COLUMNS = (
    "ruined",
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "var_95",
    "cvar_95",
    "stability",
    "alpha",
    "beta",
    "psr",
    "dsr",
    "n_trades",
    "win_rate",
    "profit_factor",
    "avg_holding_bars",
    "turnover",
    "exposure",
    "total_costs",
    "final_equity",
)

PERCENT_COLUMNS = {
    "total_return",
    "annual_return",
    "annual_volatility",
    "max_drawdown",
    "var_95",
    "cvar_95",
    "win_rate",
    "exposure",
    "psr",
    "dsr",
}

DEFAULT_CAVEATS = (
    "Backtests are estimates on one historical path; past performance does not guarantee future results.",
    "Costs are modelled (commission and slippage in basis points, borrow per bar for shorts); real "
    "fills, market impact, gaps and outages can be worse.",
    "Many agents × seeds were tried; a high single-seed Sharpe can be luck. The deflated Sharpe "
    "ratio (DSR) corrects for the number of trials; cross-seed means are more reliable than the best seed.",
    "The champion was chosen on the validation period only; the gate then decided on its single replay "
    "of the test period, which no selection had seen. Test numbers of the other runs are shown for "
    "information only; choosing among them afterwards would turn the test period into another "
    "validation period.",
    "Risk-free rate is taken as 0 in Sharpe, Sortino and alpha.",
)


def _decision(verdict: Mapping | None, champion: Mapping | None) -> dict | None:
    """The verdict in words: who was chosen on what, which returns decided, how many looks."""
    if verdict is None:
        return None
    d = verdict.get("decided_on") or {}
    out = {
        "passed": bool(verdict.get("passed")),
        "split": str(d.get("split", "test")),
        "start": str(d.get("start", "")),
        "end": str(d.get("end", "")),
        "n_bars": str(d.get("n_bars")) if d.get("n_bars") else None,
        "champion": None,
        "no_champion_reason": str(verdict.get("reason") or (champion or {}).get("reason", "")),
    }
    if champion is None or champion.get("agent") is None:
        return out
    sel = verdict.get("selection") or {}
    reuse = verdict.get("window_reuse") or {}
    defl = verdict.get("deflation") or {}
    out["champion"] = {
        "agent": str(champion["agent"]),
        "member": str(champion.get("member") or f"seed {champion['seed']}"),
        "rank_metric": str(champion.get("rank_metric", "")),
        "rule": _RULE_WORDS.get(str(sel.get("rule")), "rule " + str(sel.get("rule"))),
        "n_candidates": str(champion.get("n_candidates", "")),
        "n_trials": str(sel.get("n_trials", "?")),
        "validation_sharpe": _num3(sel.get("champion_validation_sharpe")),
        "validation_dsr": _num3(sel.get("validation_dsr")),
    }
    out.update(
        earlier_decisions=str(reuse.get("earlier_decisions", 0)),
        earlier_configurations=str(reuse.get("earlier_configurations", 0)),
        n_configurations=str(defl.get("n_configurations", 1)),
        hurdle=_num3(defl.get("hurdle_sharpe_per_bar")),
    )
    return out


_RULE_WORDS = {
    "best_agent_ensemble": "the agent whose seeds score best on average, then its seed ensemble",
    "best_agent_best_seed": "the agent whose seeds score best on average, then its best seed",
    "best_candidate": "the single best candidate",
}


def _num3(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{float(v):.3f}"


def check_identical_setup(setups: Mapping[str, Mapping]) -> dict:
    """Check that every agent and benchmark ran with the same costs and capital.

    ``setups`` maps a run name to its trading setup (e.g. ``initial_capital``,
    ``commission_bps``, ``slippage_bps``, ``borrow_bps_per_bar``). Returns the common setup;
    raises naming the first differing run and key, since comparing runs with different
    costs or capital would be dishonest.
    """
    if not setups:
        raise EvaluationInputError("setups: need the trading setup of at least one run.")
    names = list(setups)
    ref_name, ref = names[0], dict(setups[names[0]])
    for name in names[1:]:
        other = dict(setups[name])
        for key in sorted(set(ref) | set(other)):
            if ref.get(key) != other.get(key):
                raise EvaluationInputError(
                    f"setups: run '{name}' has {key}={other.get(key)!r} but '{ref_name}' has "
                    f"{key}={ref.get(key)!r}; agents and benchmarks must use identical costs and capital."
                )
    return ref


def metrics_table(
    records, columns: Sequence[str] | None = METRIC_COLUMNS, id_columns: Sequence[str] = ("agent", "seed")
) -> pd.DataFrame:
    """A flat CSV-ready DataFrame from a list of metric dicts or a records frame: id columns
    first, then the metric columns present (in ``columns`` order; all if None)."""
    df = pd.DataFrame(list(records)) if not isinstance(records, pd.DataFrame) else records.copy()
    ids = [c for c in id_columns if c in df.columns]
    if columns is None:
        cols = [c for c in df.columns if c not in ids]
    else:
        cols = [c for c in columns if c in df.columns]
    return df[ids + cols].reset_index(drop=True)


def table_to_json(df: pd.DataFrame) -> list[dict]:
    """Rows of a table as strict-JSON records (NaN/inf -> null)."""
    return json_safe(df.to_dict(orient="records"))


def figure_to_base64_png(fig: Figure, dpi: int = 100) -> str:
    """PNG bytes of a figure, base64-encoded for an ``<img src="data:image/png;base64,...">``."""
    # imported here, not at load: the walk-forward engine imports this module and draws nothing
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise EvaluationInputError(f"figures: expected a matplotlib Figure, got {type(fig).__name__}.")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(col: str, v) -> str:
    """A cell as text (the template escapes it): percentages, 3 decimals or thousands, – for none."""
    if col == "ruined" and isinstance(v, (bool, np.bool_)):
        return "RUINED" if v else ""
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _fmt_float(col, float(v))
    return str(v)


def _fmt_float(col: str, v: float) -> str:
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if col in PERCENT_COLUMNS:
        return f"{v:.2%}"
    return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.3f}"


def table_context(df: pd.DataFrame, cell: Callable[[str, Any], str] = _fmt) -> dict[str, Any]:
    """A table as the ``table`` macro takes it: column names and rows of text cells (``cell`` of
    the column name and value), a ruined run's row flagged."""
    ruined = (
        df["ruined"].fillna(False).astype(bool).to_numpy() if "ruined" in df.columns else [False] * len(df)
    )
    columns = [str(c) for c in df.columns]
    rows = [
        {"ruined": bool(ru), "cells": [cell(c, v) for c, v in zip(columns, rec)]}
        for rec, ru in zip(df.itertuples(index=False), ruined)
    ]
    return {"columns": columns, "rows": rows}


def kv_context(d: Mapping) -> list[tuple[str, str]]:
    """Key/value rows for the ``kv`` macro (values formatted as table cells)."""
    return [(str(k), _fmt(str(k), v)) for k, v in d.items()]


def gate_context(verdict: Mapping) -> dict[str, Any]:
    """The gate's rules for the ``gate_rules`` macro: status, and per rule its value, comparison,
    threshold and pass/fail."""
    rows = [
        {
            "name": str(name),
            "value": _fmt(str(name), r.get("value")),
            "comparison": str(r.get("comparison", "")),
            "threshold": _fmt(str(name), r.get("threshold")),
            "result": "pass" if r.get("passed") else "fail",
        }
        for name, r in verdict.get("rules", {}).items()
    ]
    return {"status": "PASSED" if verdict.get("passed") else "FAILED", "rows": rows}


def render_html_report(
    *,
    title: str,
    description: str,
    periods: Mapping[str, Mapping[str, str]],
    trading_setup: Mapping,
    tables: Mapping[str, pd.DataFrame],
    verdict: Mapping | None = None,
    champion: Mapping | None = None,
    figures: Mapping[str, Figure] | None = None,
    random_policy: Mapping | None = None,
    caveats: Sequence[str] = DEFAULT_CAVEATS,
    notes: Mapping[str, str] | None = None,
) -> str:
    """Render the report; returns the HTML text (write it with a text dataset).

    * ``description`` — what was tested, in words (agents, seeds, benchmarks, asset);
    * ``periods`` — ``{"train": {"start": ..., "end": ..., "bars": ...}, ...}``;
    * ``trading_setup`` — the common costs & capital (see ``check_identical_setup``);
    * ``tables`` — titled DataFrames (per-seed metrics, cross-seed summary, ranking, ...);
    * ``verdict`` — the evaluation verdict (``verdict.decide`` shape: rules on the test record,
      selection effort, window reuse);
    * ``champion`` — the selection (``gate.select_champion`` output plus its ``test`` record);
    * ``figures`` — titled matplotlib figures, embedded as base64 PNG;
    * ``random_policy`` — e.g. ``{"n_seeds": 100, "sharpe_mean": ..., "agent_percentiles": {...}}``;
    * ``notes`` — optional caption per table/figure title.
    """
    if not tables:
        raise EvaluationInputError("tables: the report needs at least one metric table.")
    notes = notes or {}
    for name, df in tables.items():
        if not isinstance(df, pd.DataFrame):
            raise EvaluationInputError(f"tables['{name}']: expected a DataFrame, got {type(df).__name__}.")
    has_champion = champion is not None and champion.get("agent") is not None
    records = [
        (label, kv_context({k: v for k, v in champion[key].items() if k in METRIC_COLUMNS}))
        for key, label in (
            ("validation", "Validation record (used to choose the champion)"),
            ("test", "Test record (out of sample: the gate decided on it)"),
        )
        if has_champion and champion.get(key)
    ]
    return render_html(
        "evaluation_report.html.j2",
        title=str(title),
        description=str(description),
        periods=[
            {
                "name": str(name),
                "start": str(p.get("start", "")),
                "end": str(p.get("end", "")),
                "bars": str(p.get("bars", "")),
            }
            for name, p in periods.items()
        ],
        trading_setup=kv_context(trading_setup),
        decision=_decision(verdict, champion),
        champion_records=records,
        gate=gate_context(verdict) if verdict is not None and verdict.get("rules") else None,
        random_policy=None
        if not random_policy
        else {
            "rows": kv_context({k: v for k, v in random_policy.items() if not isinstance(v, Mapping)}),
            "sections": [(str(k), kv_context(v)) for k, v in random_policy.items() if isinstance(v, Mapping)],
        },
        tables=[
            {"name": str(name), "note": notes.get(name), **table_context(df)} for name, df in tables.items()
        ],
        figures=[
            {"name": str(name), "note": notes.get(name), "png": figure_to_base64_png(fig)}
            for name, fig in (figures or {}).items()
        ],
        caveats=[str(c) for c in caveats],
        champion_json=None if champion is None else json.dumps(json_safe(champion), indent=1, default=str),
    )
