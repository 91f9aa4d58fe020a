"""From backtest ledgers to metric tables, cross-seed statistics, champion, verdict, figures.

What: the evaluation stage's steps after the replays (``backtests.backtest_split``):

* ``split_records`` — metrics of every run × seed of one split (``metrics.evaluate_backtests``,
  alpha/beta against buy-and-hold on the same bars), PSR of every run vs buy-and-hold, DSR of
  every agent × seed (the trials are all agent × seed rows), and each run's percentile within
  the random-policy Sharpe distribution;
* ``seed_tables`` — mean/std/min/max per agent and metric for each split, the ranking of agents
  (cross-seed mean on VALIDATION), and the random-policy summary;
* ``champion_and_verdict`` — the champion chosen on VALIDATION only (``gate.select_champion``),
  then gated on its single TEST replay (``verdict.decide``); the contract's ``champion`` and
  ``evaluation_verdict`` JSON and the decision record for the registry;
* ``evaluation_figures`` and ``report_html``.

Why a separate module: the Kedro nodes stay one-line wrappers, and each step is a plain
function tested without Kedro. Definitions: docs/metrics.md; stage wiring: docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..candidates import seed_label
from .backtests import BENCHMARKS, EvaluationParams
from .figures import (
    drawdowns_figure,
    equity_curves_figure,
    learning_curves_figure,
    positions_figure,
    random_sharpe_figure,
    rolling_sharpe_figure,
)
from .gate import select_champion
from .metrics import EvaluationInputError, evaluate_backtests, infer_periods_per_year, json_safe, ruin_index
from .report import METRIC_COLUMNS, metrics_table, render_html_report, table_to_json
from .stats import add_psr_dsr, percentile_of, rank_agents, record_psr, ruin_aware_scores, seed_summary
from .verdict import decide, selection_effort

__all__ = [
    "FIGURES",
    "split_records",
    "seed_tables",
    "champion_and_verdict",
    "evaluation_figures",
    "report_html",
    "records_json",
]

ID_COLUMNS = ("split", "kind", "agent", "seed")
SUMMARY_METRICS = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "psr",
    "dsr",
    "random_percentile",
    "n_trades",
    "win_rate",
    "turnover",
    "exposure",
    "total_costs",
    "final_equity",
)
#: Figure names (also the PNG file names in the catalog).
FIGURES = (
    "equity_validation",
    "equity_test",
    "drawdowns_test",
    "positions_test",
    "rolling_sharpe_test",
    "random_sharpe_test",
    "learning_curves",
)


def _by_bar(frame: pd.DataFrame) -> pd.DataFrame:
    # stable: a ruined lane's frozen rows repeat the bar of ruin after it (env.replay), and the
    # bar of ruin itself (its fill and costs) must stay first
    return frame.sort_values("bar", kind="stable").reset_index(drop=True)


def _runs(ledger: pd.DataFrame):
    for (kind, run, seed), frame in ledger.groupby(["kind", "run", "seed"], sort=False):
        yield str(kind), str(run), int(seed), _by_bar(frame)


def split_records(ledger: pd.DataFrame, split: str) -> pd.DataFrame:
    """One metrics row per run × seed of ``split`` (agents, benchmarks, random seeds).

    A run whose account was wiped out is measured up to its bar of ruin and flagged
    ``ruined`` (``metrics.evaluate_backtest``); it never stops the other runs. Its PSR and
    DSR are NaN, and in random-policy percentiles it ranks below every run that was not
    ruined (``stats.ruin_aware_scores``).
    """
    need = {"kind", "run", "seed", "date", "bar", "equity"}
    if not isinstance(ledger, pd.DataFrame) or not need <= set(ledger.columns):
        raise EvaluationInputError(
            f"evaluation.{split}_ledger: expected the long backtest ledger with columns "
            f"{sorted(need)}; run the backtest node first."
        )
    bh = ledger[(ledger["run"] == "buy_and_hold") & (ledger["kind"] == "benchmark")].sort_values("bar")
    if bh.empty:
        raise EvaluationInputError(
            f"evaluation.{split}_ledger: has no buy_and_hold run; every agent is compared "
            "with it, so replay it on the same bars."
        )
    ppy = infer_periods_per_year(pd.DatetimeIndex(bh["date"]))
    bh = bh.reset_index(drop=True)
    runs = list(_runs(ledger))
    recs = evaluate_backtests([frame for *_, frame in runs], benchmark_frame=bh, periods_per_year=ppy)
    rows = [
        {"split": split, "kind": kind, "agent": run, "seed": seed, **rec}
        for (kind, run, seed, _), rec in zip(runs, recs)
    ]
    records = pd.DataFrame(rows)
    records["ruined"] = records["ruined"].astype(bool)
    bh_rec = records[records["agent"] == "buy_and_hold"].iloc[0]
    records["psr"] = [
        record_psr(
            r.sharpe_per_bar, bh_rec["sharpe_per_bar"], int(r.n_bars), r.skew, r.kurtosis, bool(r.ruined)
        )
        for r in records.itertuples()
    ]
    agents = records["kind"].isin(["agent", "ensemble"])  # every candidate is a trial
    records["dsr"] = np.nan
    if agents.any():
        records.loc[agents, "dsr"] = add_psr_dsr(records[agents], bh_rec["sharpe_per_bar"])["dsr"].to_numpy()
    scores = ruin_aware_scores(records["sharpe"], records["ruined"])
    is_random = (records["kind"] == "random").to_numpy()
    random_scores = scores[is_random]
    records["random_percentile"] = np.nan
    if (~np.isnan(random_scores)).any():
        mask = ~is_random
        records.loc[mask, "random_percentile"] = [percentile_of(v, random_scores) for v in scores[mask]]
    return records


def _kind(records: pd.DataFrame, kind: str) -> pd.DataFrame:
    return records[records["kind"] == kind].reset_index(drop=True)


def _bh(records: pd.DataFrame, split: str) -> dict:
    rows = records[(records["kind"] == "benchmark") & (records["agent"] == "buy_and_hold")]
    if len(rows) != 1:
        raise EvaluationInputError(f"evaluation.{split}_metrics: expected exactly one buy_and_hold row.")
    return rows.iloc[0].to_dict()


def seed_tables(validation: pd.DataFrame, test: pd.DataFrame, params: EvaluationParams) -> dict:
    """Cross-seed summary (both splits), ranking (on validation) and random-policy summary."""
    summaries = []
    for split, rec in (("validation", validation), ("test", test)):
        agents = _kind(rec, "agent")
        if agents.empty:
            raise EvaluationInputError(
                f"evaluation.{split}_metrics: no agent rows; train at least one agent."
            )
        s = seed_summary(agents, [m for m in SUMMARY_METRICS if m in agents.columns])
        s.insert(0, "split", split)
        summaries.append(s)
    summary = pd.concat(summaries, ignore_index=True)
    val = summary[summary["split"] == "validation"].drop(columns="split").reset_index(drop=True)
    ranking = rank_agents(val, params.rank_metric)
    ruin_cols = ["n_ruined"] if "n_ruined" in ranking.columns else []
    stat_cols = ruin_cols + [f"{params.rank_metric}_{s}" for s in ("mean", "std", "min", "max")]
    cols = ["rank", "agent", "n_seeds"] + stat_cols
    ranking = ranking[cols].rename(columns={c: f"validation_{c}" for c in stat_cols})
    test_sum = summary[summary["split"] == "test"].set_index("agent")
    for stat in ("mean", "std"):
        ranking[f"test_{params.rank_metric}_{stat}"] = ranking["agent"].map(
            test_sum[f"{params.rank_metric}_{stat}"]
        )
    if ruin_cols:
        ranking["test_n_ruined"] = ranking["agent"].map(test_sum["n_ruined"])
    for split, rec in (("validation", validation), ("test", test)):  # each agent's seed ensemble
        ens = _kind(rec, "ensemble").set_index("agent")
        if not ens.empty:
            ranking[f"{split}_ensemble_{params.rank_metric}"] = ranking["agent"].map(ens[params.rank_metric])
    ranking.insert(2, "ranked_on", "validation")

    random = {
        "n_seeds": params.benchmarks.random_seeds,
        "switch_prob": params.benchmarks.random_switch_prob,
        "positions_drawn_from": "environment.positions",
    }
    for split, rec in (("validation", validation), ("test", test)):
        rand = _kind(rec, "random")
        rs = rand["sharpe"].to_numpy(dtype=float)
        q = np.nanpercentile(rs, [5, 25, 50, 75, 95]) if (~np.isnan(rs)).any() else [np.nan] * 5
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = {
                "sharpe_mean": float(np.nanmean(rs)) if (~np.isnan(rs)).any() else np.nan,
                "sharpe_std": float(np.nanstd(rs, ddof=1)) if (~np.isnan(rs)).sum() > 1 else np.nan,
            }
        n_ruined = int(rand["ruined"].sum()) if "ruined" in rand.columns else 0
        # Sharpe statistics over every seed (a ruined seed with its Sharpe up to ruin); percentiles
        # of agents rank ruined seeds below all others (split_records)
        random[split] = {
            **stats,
            **{f"sharpe_p{p}": float(v) for p, v in zip((5, 25, 50, 75, 95), q)},
            "n_ruined": n_ruined,
        }
        ag = _kind(rec, "agent")
        random[f"{split}: agent percentiles (mean over seeds)"] = {
            a: float(g["random_percentile"].mean()) for a, g in ag.groupby("agent")
        }
        random[f"{split}: agent × seed percentiles"] = {
            f"{r.agent} seed {r.seed}": float(r.random_percentile) for r in ag.itertuples()
        }
    return {"summary": summary, "ranking": ranking, "random_policy": json_safe(random)}


def champion_and_verdict(
    validation: pd.DataFrame,
    test: pd.DataFrame,
    params: EvaluationParams,
    policy_versions: Mapping[str, str | None],
    *,
    policy_filepaths: Mapping[str, str | None],
    policy_sha256: Mapping[str, Mapping[str, str] | None] | None = None,
    histories: Mapping[str, pd.DataFrame],
    earlier_decisions: list,
    window: Mapping[str, str],
    data_fingerprint: str,
    config: str,
) -> tuple[dict, dict, dict, dict]:
    """Choose the champion on VALIDATION only, then gate its single TEST replay.

    Returns ``(champion_json, verdict_json, selection, decision_record)``: the contract's
    ``champion`` and ``evaluation_verdict`` documents, the full selection (for the report), and the
    gate decision to record in the registry (``verdict.decide``), so that later decisions on the same
    window are counted. A failed verdict still names the champion, with ``verdict_passed: false``;
    deployment must refuse to promote it without force.
    """
    candidates = validation[validation["kind"].isin(["agent", "ensemble"])].reset_index(drop=True)
    val_bh, test_bh = _bh(validation, "validation"), _bh(test, "test")
    sel = select_champion(candidates, params.rank_metric, params.selection)
    effort = selection_effort(
        histories, float(val_bh["periods_per_year"]), ensembles=_kind(validation, "ensemble")
    )
    test_record = None if sel["agent"] is None else _test_record(test, sel)
    if test_record is None:
        verdict, decision = _no_champion(sel, params, effort, window, data_fingerprint, config)
    else:
        verdict, decision = decide(
            champion_validation=sel["validation"],
            champion_test=test_record,
            test_buy_and_hold=test_bh,
            params=params.gate,
            effort=effort,
            earlier_decisions=earlier_decisions,
            window=window,
            data_fingerprint=data_fingerprint,
            config=config,
        )
    champion = _champion_document(
        sel,
        test_record,
        bool(verdict["passed"]),
        params,
        policy_versions,
        policy_filepaths,
        policy_sha256 or {},
    )
    verdict = {
        **verdict,
        "selection": {**verdict["selection"], "rule": params.selection},
        "champion": None
        if sel["agent"] is None
        else {
            "agent": sel["agent"],
            "seed": sel["seed"],
            "kind": sel["kind"],
            "policy_version": champion["policy_version"],
        },
        "buy_and_hold_sharpe": {"validation": val_bh["sharpe"], "test": test_bh["sharpe"]},
        "candidates_on_validation": [
            {
                "agent": r["agent"],
                "seed": int(r["seed"]),
                "kind": r["kind"],
                params.rank_metric: r[params.rank_metric],
            }
            for r in candidates.to_dict("records")
        ],
    }
    selection = {**sel, "test": test_record, "verdict": verdict}
    return json_safe(champion), json_safe(verdict), json_safe(selection), json_safe(decision)


def _test_record(test: pd.DataFrame, sel: Mapping) -> dict:
    """The champion's single test replay (the same agent, seed and kind as selected)."""
    match = test[
        (test["kind"] == sel["kind"])
        & (test["agent"].astype(str) == sel["agent"])
        & (test["seed"].astype(int) == sel["seed"])
    ]
    if len(match) != 1:
        raise EvaluationInputError(
            f"evaluation.test_metrics: expected exactly one row for agent '{sel['agent']}' "
            f"{seed_label(sel['seed'])}, found {len(match)}; replay every validated candidate on the test "
            "period once."
        )
    return match.iloc[0].to_dict()


def _no_champion(
    sel: Mapping,
    params: EvaluationParams,
    effort: Mapping,
    window: Mapping[str, str],
    data_fingerprint: str,
    config: str,
) -> tuple[dict, dict]:
    """A failed verdict (and its decision record) when no candidate could be chosen."""
    verdict = {
        "passed": False,
        "reason": sel["reason"],
        "decided_on": {"split": "test", **dict(window)},
        "rules": {},
        "thresholds": params.gate.to_params(),
        "selection": {
            "selected_on": "validation",
            "rule": params.selection,
            "n_trials": effort["n_trials"],
            "trials_by_agent": effort["trials_by_agent"],
        },
    }
    decision = {
        "data_fingerprint": data_fingerprint,
        "window": dict(window),
        "config_sha256": config,
        "passed": False,
        "decided_on": "test",
        "reason": sel["reason"],
    }
    return verdict, decision


def _digest(digest: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if digest is None else dict(digest)


def _champion_document(
    sel: Mapping,
    test_record: Mapping | None,
    passed: bool,
    params: EvaluationParams,
    policy_versions: Mapping[str, str | None],
    policy_filepaths: Mapping[str, str | None],
    policy_sha256: Mapping[str, Mapping[str, str] | None],
) -> dict:
    """The contract's ``champion.json``: who, which artifact (and the SHA-256 of its files as they
    were checked when evaluation loaded it), and its validation and test figures."""
    agent, strip = sel["agent"], set(ID_COLUMNS)
    return {
        "agent": agent,
        "seed": sel["seed"],
        "kind": sel.get("kind"),
        "member": None if agent is None else seed_label(sel["seed"]),
        "policy_version": policy_versions.get(agent) if agent else None,
        "policy_filepath": policy_filepaths.get(agent) if agent else None,
        "policy_sha256": _digest(policy_sha256.get(agent)) if agent else None,
        "validation_metrics": {k: v for k, v in (sel["validation"] or {}).items() if k not in strip} or None,
        "test_metrics": {k: v for k, v in (test_record or {}).items() if k not in strip} or None,
        "verdict_passed": passed,
        "selected_on": "validation",
        "selection_rule": params.selection,
        "decided_on": "test",
        "rank_metric": params.rank_metric,
        "reason": sel.get("reason") or (None if passed else "the champion's test record failed the gate"),
        "n_candidates": sel["n_candidates"],
    }


def _lane(ledger: pd.DataFrame, run: str, seed: int) -> pd.DataFrame:
    """One run's ledger by date, up to and including its bar of ruin (the frozen rows after it
    repeat that date)."""
    f = _by_bar(ledger[(ledger["run"] == run) & (ledger["seed"] == seed)])
    k = ruin_index(f["equity"])
    if k is not None:
        f = f.iloc[: k + 1]
    return f.set_index(pd.DatetimeIndex(f["date"]))


def _representatives(validation: pd.DataFrame, metric: str) -> dict[str, int]:
    """Per agent, its best seed on VALIDATION (same ordering as the champion rule; a ruined seed
    only when every seed of the agent was ruined)."""
    ag = _kind(validation, "agent")
    key = ag[metric].astype(float).fillna(-np.inf)
    if "ruined" in ag.columns:
        key = key.where(~ag["ruined"].astype(bool), -np.inf)
    ag = ag.assign(_m=key).sort_values(["_m", "seed"], ascending=[False, True])
    return {str(a): int(g.iloc[0]["seed"]) for a, g in ag.groupby("agent", sort=True)}


def evaluation_figures(
    validation_ledger: pd.DataFrame,
    test_ledger: pd.DataFrame,
    test_table: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    champion: Mapping,
    histories: Mapping[str, pd.DataFrame],
    params: EvaluationParams,
) -> dict:
    """The report figures. Agents are shown by their best seed on validation (the seed the
    champion rule would pick), so figures on test do not cherry-pick test results."""
    reps = _representatives(validation, params.rank_metric)
    figs = {}

    def curves(ledger):
        out = {f"{a} (seed {s})": _lane(ledger, a, s)["equity"] for a, s in reps.items()}
        out.update({b: _lane(ledger, b, 0)["equity"] for b in BENCHMARKS})
        return out

    figs["equity_validation"] = equity_curves_figure(
        curves(validation_ledger), benchmarks=BENCHMARKS, title="Equity on validation (log scale)"
    )
    test_curves = curves(test_ledger)
    figs["equity_test"] = equity_curves_figure(
        test_curves, benchmarks=BENCHMARKS, title="Equity on test (log scale)"
    )
    figs["drawdowns_test"] = drawdowns_figure(test_curves, title="Drawdown on test")
    ppy = float(test["periods_per_year"].iloc[0])
    figs["rolling_sharpe_test"] = rolling_sharpe_figure(
        {k: v.pct_change().dropna() for k, v in test_curves.items() if k != "flat"},
        params.rolling_window,
        ppy,
    )
    a, s = champion.get("agent"), champion.get("seed")
    if a is None:
        a, s = "buy_and_hold", 0
    lane = _lane(test_ledger, a, s)
    close = test_table["Close"].loc[lane.index]
    label = (
        "champion, gate passed on test" if champion.get("verdict_passed") else "champion, gate FAILED on test"
    )
    figs["positions_test"] = positions_figure(
        close, lane["position"], title=f"{a} seed {s} ({label}): positions on test"
    )
    rs = _kind(test, "random")["sharpe"]
    marks = {
        f"{ag} (seed {sd})": float(test[(test["agent"] == ag) & (test["seed"] == sd)]["sharpe"].iloc[0])
        for ag, sd in reps.items()
    }
    marks["buy_and_hold"] = float(_bh(test, "test")["sharpe"])
    figs["random_sharpe_test"] = random_sharpe_figure(rs, marks, title="Test Sharpe: random policy vs agents")
    runs = {}
    for agent, h in sorted(histories.items()):
        if not isinstance(h, pd.DataFrame) or h.empty:
            raise EvaluationInputError(f"training.{agent}.history: empty or not a table; rerun training.")
        if "seed" not in h.columns:
            raise EvaluationInputError(
                f"training.{agent}.history: missing column 'seed' (see docs/contracts.md)."
            )
        for seed, g in h.groupby("seed", sort=True):
            runs[f"{agent}/seed {int(seed)}"] = g
    figs["learning_curves"] = learning_curves_figure(runs)
    return {k: figs[k] for k in FIGURES}


def report_html(
    *,
    setup: Mapping,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    tables: Mapping,
    selection: Mapping,
    verdict: Mapping,
    figures: Mapping,
    periods: Mapping,
) -> str:
    """The self-contained HTML report (see ``report.render_html_report``)."""
    agents = ", ".join(f"{a} ({len(setup['seeds'][a])} seeds)" for a in setup["agents"])
    p = setup["evaluation"]["benchmarks"]
    description = (
        f"Trained agents {agents} were replayed deterministically on the validation and test periods through "
        f"the same trading environment used in training. Benchmarks on the same bars, costs and capital: "
        f"buy-and-hold, flat, SMA crossover ({p['sma_fast']}/{p['sma_slow']} bars), time-series momentum "
        f"({p['momentum_lookback']} bars) and a random policy over {p['random_seeds']} seeds (switch "
        "probability "
        f"{p['random_switch_prob']} per bar). The champion is chosen on validation "
        f"{setup['evaluation']['rank_metric']} among agent × seed runs that pass the gate; the test period "
        "is "
        "reported as-is."
    )
    cols = [c for c in METRIC_COLUMNS if c != "psr"] + ["psr", "random_percentile"]
    t = {
        "Agents per seed — validation": metrics_table(_kind(validation, "agent"), cols),
        "Agents per seed — test": metrics_table(_kind(test, "agent"), cols),
        "Benchmarks — validation": metrics_table(_kind(validation, "benchmark"), cols),
        "Benchmarks — test": metrics_table(_kind(test, "benchmark"), cols),
        "Cross-seed summary (mean, std, min, max)": tables["summary"],
        "Ranking of agents (cross-seed mean on validation)": tables["ranking"],
    }
    notes = {
        "Cross-seed summary (mean, std, min, max)": "std uses ddof = 1 (blank for a single seed).",
        "Ranking of agents (cross-seed mean on validation)": "Test columns are shown for information only.",
    }
    return render_html_report(
        title="Evaluation report",
        description=description,
        periods=periods,
        trading_setup=setup["trading_setup"],
        tables=t,
        verdict=verdict,
        champion=selection,
        figures=figures,
        random_policy=tables["random_policy"],
        notes=notes,
    )


def records_json(validation: pd.DataFrame, test: pd.DataFrame, tables: Mapping) -> dict:
    """Every metric table as strict JSON (NaN -> null)."""
    keep = list(ID_COLUMNS) + [c for c in validation.columns if c not in ID_COLUMNS]
    return {
        "per_run": table_to_json(pd.concat([validation, test], ignore_index=True)[keep]),
        "summary": table_to_json(tables["summary"]),
        "ranking": table_to_json(tables["ranking"]),
        "random_policy": tables["random_policy"],
    }
