"""Self-contained HTML evaluation report, plus CSV/JSON-ready metric tables.

What: one HTML file that opens offline (inline CSS, figures embedded as base64 PNG, no
JavaScript, no external links needed) and reads without the code: what was tested, the data
periods, the trading setup (costs and capital, identical for every agent and benchmark),
metric tables, cross-seed statistics, the gate verdict, the champion and caveats.

Why hand-written HTML: a few escaped tables and images need no template engine (none is a
project dependency); everything user-provided is escaped with ``html.escape``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .metrics import EvaluationInputError, json_safe

__all__ = [
    "DEFAULT_CAVEATS",
    "METRIC_COLUMNS",
    "check_identical_setup",
    "figure_to_base64_png",
    "metrics_table",
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


def _decision_html(verdict: Mapping | None, champion: Mapping | None) -> str:
    """The verdict in words: who was chosen on what, which returns decided, how many looks."""
    e = html.escape
    if verdict is None:
        return "<p class='verdict failed'>No verdict.</p>"
    ok = bool(verdict.get("passed"))
    cls, word = ("passed", "PASSED") if ok else ("failed", "FAILED")
    d = verdict.get("decided_on") or {}
    out = [
        f"<p class='verdict {cls}'>{word}: decided on the {e(str(d.get('split', 'test')))} window "
        f"{e(str(d.get('start', '')))} .. {e(str(d.get('end', '')))}"
        f"{' (' + e(str(d.get('n_bars'))) + ' bars)' if d.get('n_bars') else ''}, returns that no selection "
        "has seen.</p>"
    ]
    if champion is None or champion.get("agent") is None:
        out.append(
            f"<p>No champion: {e(str(verdict.get('reason') or (champion or {}).get('reason', '')))}.</p>"
        )
        return "".join(out)
    sel = verdict.get("selection") or {}
    member = champion.get("member") or f"seed {champion['seed']}"
    out.append(
        f"<p>Champion <b>{e(str(champion['agent']))}</b> <b>{e(str(member))}</b>, chosen by validation "
        f"{e(str(champion.get('rank_metric', '')))} "
        f"({e(_RULE_WORDS.get(str(sel.get('rule')), 'rule ' + str(sel.get('rule'))))}) "
        f"among {e(str(champion.get('n_candidates', '')))} candidates (agent × seed runs and seed "
        "ensembles). "
        f"Selection effort on validation: {e(str(sel.get('n_trials', '?')))} trials scored "
        "(every checkpoint evaluation of every seed of every agent, and every ensemble's validation "
        "replay); "
        f"the champion's validation Sharpe "
        f"{_num3(sel.get('champion_validation_sharpe'))} deflated for them has DSR "
        f"{_num3(sel.get('validation_dsr'))}."
        "</p>"
    )
    reuse = verdict.get("window_reuse") or {}
    defl = verdict.get("deflation") or {}
    out.append(
        f"<p>This test window was gated {e(str(reuse.get('earlier_decisions', 0)))} time(s) before, by "
        f"{e(str(reuse.get('earlier_configurations', 0)))} configuration(s); the PSR rule is deflated for "
        f"{e(str(defl.get('n_configurations', 1)))} distinct configuration(s) (hurdle Sharpe per bar "
        f"{_num3(defl.get('hurdle_sharpe_per_bar'))} = buy-and-hold's plus the best of that many unskilled "
        "attempts).</p>"
    )
    if not ok:
        out.append(
            "<p>The champion must not be promoted: deployment refuses it without an explicit, recorded "
            "force. The shadow paper account still trades it so that you can watch it.</p>"
        )
    return "".join(out)


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
    if not isinstance(fig, Figure):
        raise EvaluationInputError(f"figures: expected a matplotlib Figure, got {type(fig).__name__}.")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(col: str, v) -> str:
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
    return html.escape(str(v))


def _fmt_float(col: str, v: float) -> str:
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if col in PERCENT_COLUMNS:
        return f"{v:.2%}"
    return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.3f}"


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    ruined = (
        df["ruined"].fillna(False).astype(bool).to_numpy() if "ruined" in df.columns else [False] * len(df)
    )
    for rec, ru in zip(df.itertuples(index=False), ruined):
        cls = " class='ruined'" if ru else ""
        rows.append(
            f"<tr{cls}>" + "".join(f"<td>{_fmt(c, v)}</td>" for c, v in zip(df.columns, rec)) + "</tr>"
        )
    body = "".join(rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _kv_html(d: Mapping) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(str(k), v)}</td></tr>" for k, v in d.items())
    return f"<table class='kv'>{rows}</table>"


def _verdict_html(verdict: Mapping) -> str:
    status = "PASSED" if verdict.get("passed") else "FAILED"
    rows = []
    for name, r in verdict.get("rules", {}).items():
        ok = "pass" if r.get("passed") else "fail"
        rows.append(
            f"<tr class='{ok}'><td>{html.escape(name)}</td><td>{_fmt(name, r.get('value'))}</td>"
            f"<td>{html.escape(str(r.get('comparison', '')))}</td><td>{_fmt(name, r.get('threshold'))}</td>"
            f"<td>{ok}</td></tr>"
        )
    return (
        f"<p class='verdict {status.lower()}'>Gate {status}</p><table><thead><tr><th>rule</th><th>value</th>"
        f"<th></th><th>threshold</th><th>result</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.kv th{text-align:left}
.scroll{overflow-x:auto}.pass td{background:#eef8ee}.fail td{background:#fbeeee}
.ruined td{background:#fbeeee;color:#a31515}
.verdict{font-weight:bold;font-size:1.1em}.verdict.passed{color:#176b17}.verdict.failed{color:#a31515}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}.note{color:#555;font-size:.9em}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
"""


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
    e = html.escape
    return "".join(
        [
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>",
            f"<h2>What was tested</h2><p>{e(description)}</p>",
            _periods_html(periods),
            "<h2>Trading setup (identical for every agent and benchmark)</h2>" + _kv_html(trading_setup),
            _verdict_section_html(verdict, champion),
            _random_policy_html(random_policy),
            _tables_html(tables, notes),
            _figures_html(figures, notes),
            "<h2>Caveats</h2><ul>" + "".join(f"<li>{e(c)}</li>" for c in caveats) + "</ul>",
            _DEFINITIONS_HTML,
            ""
            if champion is None
            else "<h3>Champion record (JSON)</h3><pre>"
            + e(json.dumps(json_safe(champion), indent=1, default=str))
            + "</pre>",
            "</body></html>",
        ]
    )


_DEFINITIONS_HTML = (
    "<h2>Definitions</h2><p class='note'>Returns are simple per-bar returns of equity net of all "
    "costs; Sharpe and Sortino are annualised with the bar frequency and a zero risk-free rate; "
    "max drawdown is the worst fall from a running peak (negative); a RUINED run's equity reached "
    "zero or below: its total return, annual return and max drawdown are -100 %, its other figures "
    "cover the bars up to the ruin and its PSR/DSR are blank; VaR/CVaR are per-bar 5 % "
    "left-tail figures; PSR is the probability that the true Sharpe exceeds buy-and-hold's; DSR "
    "deflates for the number of agent × seed trials. Full definitions: docs/metrics.md.</p>"
)


def _periods_html(periods: Mapping[str, Mapping[str, str]]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(str(name))}</td><td>{e(str(p.get('start', '')))}</td><td>{e(str(p.get('end', '')))}</td>"
        f"<td>{e(str(p.get('bars', '')))}</td></tr>"
        for name, p in periods.items()
    )
    return (
        "<h2>Data periods</h2><table><thead><tr><th>period</th><th>start</th><th>end</th><th>bars</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _verdict_section_html(verdict: Mapping | None, champion: Mapping | None) -> str:
    """The decision, the champion's validation and test records, and the gate's rules."""
    parts = ["<h2>Verdict</h2>", _decision_html(verdict, champion)]
    if champion is not None and champion.get("agent") is not None:
        for key, label in (
            ("validation", "Validation record (used to choose the champion)"),
            ("test", "Test record (out of sample: the gate decided on it)"),
        ):
            if champion.get(key):
                rec = {k: v for k, v in champion[key].items() if k in METRIC_COLUMNS}
                parts.append(f"<h3>{label}</h3>" + _kv_html(rec))
    if verdict is not None and verdict.get("rules"):
        parts.append("<h3>Gate rules on the test record</h3>" + _verdict_html(verdict))
    return "".join(parts)


def _random_policy_html(random_policy: Mapping | None) -> str:
    if not random_policy:
        return ""
    parts = [
        "<h2>Random-policy benchmark</h2>"
        + _kv_html({k: v for k, v in random_policy.items() if not isinstance(v, Mapping)})
    ]
    parts += [
        f"<h3>{html.escape(str(k))}</h3>" + _kv_html(v)
        for k, v in random_policy.items()
        if isinstance(v, Mapping)
    ]
    return "".join(parts)


def _caption(name: str, notes: Mapping[str, str]) -> str:
    e = html.escape
    return f"<h3>{e(name)}</h3>" + (f"<p class='note'>{e(notes[name])}</p>" if name in notes else "")


def _tables_html(tables: Mapping[str, pd.DataFrame], notes: Mapping[str, str]) -> str:
    parts = ["<h2>Metric tables</h2>"]
    for name, df in tables.items():
        if not isinstance(df, pd.DataFrame):
            raise EvaluationInputError(f"tables['{name}']: expected a DataFrame, got {type(df).__name__}.")
        parts.append(_caption(name, notes) + _table_html(df))
    return "".join(parts)


def _figures_html(figures: Mapping[str, Figure] | None, notes: Mapping[str, str]) -> str:
    if not figures:
        return ""
    return "<h2>Figures</h2>" + "".join(
        _caption(name, notes)
        + f"<img alt='{html.escape(name)}' src='data:image/png;base64,{figure_to_base64_png(fig)}'>"
        for name, fig in figures.items()
    )
