"""What a run records in MLflow, built from the run's outputs as plain data (no MLflow here).

:func:`cycle_record` turns a cycle's verdict, stitched metrics table, fold table and training
histories into a :class:`RunRecord`: the parent run's tags and metrics, and one
:class:`NestedRun` per fold with its validation and test Sharpe and its training curves as metric
histories by step. :func:`study_record` does the same for an Optuna study: the study on the parent
run, one nested run per trial. :func:`flat_params` flattens the parameter blocks. Everything is
a pure function of its inputs, so two identical runs give equal records and a worker never has
anything to log: the driver builds and writes records (``tracking.store``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: The stitched metrics logged per strategy (the columns of the metrics table that exist).
METRICS = (
    "sharpe",
    "sortino",
    "calmar",
    "total_return",
    "annual_return",
    "annual_volatility",
    "max_drawdown",
    "annual_turnover",
    "exposure",
    "total_costs",
    "final_equity",
    "n_trades",
    "psr",
    "dsr",
)
#: Rows of the metrics table, by ``kind``, and the metric prefix each is logged under.
STRATEGY_KINDS = {
    "procedure": lambda agent: "procedure",
    "agent_selected": lambda agent: f"agent.{agent}",
    "benchmark": lambda agent: f"benchmark.{agent}",
}
#: Columns of a training history logged as curves, by step.
CURVES = ("eval_score", "episode_return", "policy_loss", "value_loss", "q_loss", "entropy")


@dataclass(frozen=True)
class NestedRun:
    """A child of the run: a walk-forward fold or a tuning trial."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    #: ``(key, value, step)``: one point of a metric history
    history: list[tuple[str, float, int]] = field(default_factory=list)


@dataclass(frozen=True)
class RunRecord:
    """Everything a run adds to its MLflow run besides its parameters and artifacts."""

    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    children: list[NestedRun] = field(default_factory=list)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _numbers(pairs: Iterable[tuple[str, Any]]) -> dict[str, float]:
    """The finite numbers among ``pairs`` (NaN, None and text are left out, never logged as 0)."""
    return {k: v for k, v in ((k, _number(v)) for k, v in pairs) if v is not None}


def flat_params(params: Mapping[str, Any], sep: str = ".") -> dict[str, str]:
    """Every parameter block flattened to ``block.key.leaf`` → its value as text (lists and
    empty mappings as JSON)."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if hasattr(value, "model_dump"):  # a typed block (pydantic), as Kedro hands it over
            value = value.model_dump(mode="json")
        if isinstance(value, Mapping) and value:
            for key, inner in value.items():
                walk(f"{prefix}{sep}{key}" if prefix else str(key), inner)
        elif isinstance(value, (list, tuple, Mapping)):
            out[prefix] = json.dumps(value, default=str)
        else:
            out[prefix] = str(value)

    walk("", params)
    return out


def verdict_record(verdict: Mapping[str, Any]) -> RunRecord:
    """The gate's decision as tags (``verdict.passed``, ``verdict.decided_on``, the data
    fingerprint) and metrics (every rule's value, PBO, DSR, the deflated PSR, the looks counted)."""
    decided = verdict.get("decided_on") or {}
    tags = {"verdict.passed": str(bool(verdict.get("passed"))).lower()}
    if decided:
        window = f"{decided.get('start')}..{decided.get('end')}"
        tags["verdict.decided_on"] = f"{decided.get('split')} {window} ({decided.get('n_bars')} bars)"
        if decided.get("data_fingerprint"):
            tags["data_fingerprint"] = str(decided["data_fingerprint"])
    rules = verdict.get("rules") or {}
    pbo, dsr = verdict.get("pbo") or {}, verdict.get("dsr") or {}
    deflation, reuse = verdict.get("deflation") or {}, verdict.get("window_reuse") or {}
    selection = verdict.get("selection") or {}
    metrics = _numbers(
        [
            ("gate.passed", bool(verdict.get("passed"))),
            *((f"gate.{name}", rule.get("value")) for name, rule in rules.items()),
            *((f"gate.{name}.passed", bool(rule.get("passed"))) for name, rule in rules.items()),
            ("gate.psr_deflated", (rules.get("min_psr") or {}).get("value")),
            ("gate.pbo", pbo.get("pbo")),
            ("gate.dsr", dsr.get("value")),
            ("gate.dsr_trials", dsr.get("n_trials")),
            ("gate.deflation_configurations", deflation.get("n_configurations")),
            ("gate.earlier_decisions", reuse.get("earlier_decisions")),
            ("gate.checkpoint_evaluations", selection.get("checkpoint_evaluations")),
            ("gate.tuning_trials", selection.get("tuning_trials")),
        ]
    )
    return RunRecord(tags=tags, metrics=metrics)


def stitched_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``procedure.sharpe``, ``agent.<agent>.sharpe``, ``benchmark.<name>.sharpe``, ... from the
    stitched metrics table (its rows of those kinds; per-seed and random rows stay in the table)."""
    metrics: dict[str, float] = {}
    columns = [c for c in METRICS if c in table.columns]
    for row in table.to_dict("records"):
        prefix = STRATEGY_KINDS.get(str(row.get("kind")))
        if prefix is None:
            continue
        name = prefix(row.get("agent"))
        metrics.update(_numbers((f"{name}.{c}", row[c]) for c in columns))
    return metrics


def fold_runs(folds: pd.DataFrame, history: pd.DataFrame | None = None) -> list[NestedRun]:
    """One nested run per fold: its window and champion as tags, its validation and test figures
    as metrics, and (``history``) every seed's training curves as histories by step."""
    runs = []
    for row in folds.to_dict("records"):
        fold = str(row["fold"])
        tags = {k: str(row[k]) for k in ("label", "test_start", "test_end", "champion") if k in row}
        metrics = _numbers((k, v) for k, v in row.items() if k not in tags and k != "fold")
        points: list[tuple[str, float, int]] = []
        if history is not None and len(history):
            mine = history[history["fold"].astype(str) == fold]
            curves = [c for c in CURVES if c in mine.columns]
            for r in mine.sort_values(["agent", "seed", "step"]).to_dict("records"):
                for c in curves:
                    value = _number(r[c])
                    if value is not None:
                        points.append((f"{r['agent']}.seed{int(r['seed'])}.{c}", value, int(r["step"])))
        runs.append(NestedRun(name=fold, tags={"kind": "fold", **tags}, metrics=metrics, history=points))
    return runs


def cycle_record(
    verdict: Mapping[str, Any] | None,
    metrics: pd.DataFrame | None,
    folds: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
) -> RunRecord:
    """The record of a cycle's run: the verdict, the stitched metrics, the folds."""
    judged = verdict_record(verdict) if verdict else RunRecord()
    stitched = stitched_metrics(metrics) if metrics is not None else {}
    children = fold_runs(folds, history) if folds is not None else []
    return RunRecord(tags=judged.tags, metrics={**stitched, **judged.metrics}, children=children)


def study_record(summary: Mapping[str, Any], trials: pd.DataFrame) -> RunRecord:
    """An Optuna study: its counts on the parent run (``study.trials_counted`` is what the
    walk-forward judge counts as looks at the validation windows), one nested run per trial with
    its sampled parameters, state and value."""
    tags = {
        "study.name": str(summary.get("study_name")),
        "study.agent": str(summary.get("agent")),
        "study.storage": str(summary.get("storage")),
        "study.window": json.dumps(summary.get("window")),
    }
    if summary.get("data_fingerprint"):
        tags["data_fingerprint"] = str(summary["data_fingerprint"])
    counts = summary.get("trials") or {}
    metrics = _numbers(
        [
            ("study.trials_counted", summary.get("trials_counted")),
            ("study.best_value", summary.get("best_value")),
            ("study.best_trial", summary.get("best_trial")),
            ("study.trials_this_run", summary.get("trials_this_run")),
            *((f"study.trials_{state}", n) for state, n in counts.items()),
        ]
    )
    children = []
    for row in trials.to_dict("records"):
        params = {k[len("param_") :]: str(v) for k, v in row.items() if k.startswith("param_")}
        figures = ("value", "last_intermediate", "folds_done", "ruined_seeds", "diverged_folds", "duration_s")
        children.append(
            NestedRun(
                name=f"trial {int(row['number'])}",
                tags={"kind": "trial", "state": str(row.get("state")), "number": str(int(row["number"]))},
                params=params,
                metrics=_numbers((k, row.get(k)) for k in figures),
            )
        )
    return RunRecord(tags=tags, metrics=metrics, children=children)
