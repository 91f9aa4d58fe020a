"""Gate rules and champion selection.

What: a champion may be promoted only if it passes explicit, configured rules (minimum Sharpe,
worst drawdown allowed, beating buy-and-hold, minimum PSR). ``evaluate_gate`` applies them to one
record and returns, per rule, the value, the threshold and pass/fail, so a reader can see why
something was (not) promoted.

Who is judged, and on which returns, is decided elsewhere: ``select_champion`` chooses on the
VALIDATION period only and never sees test metrics; ``verdict.decide`` then applies the gate to
the champion's single replay of the TEST period (returns no selection has seen), with the PSR
rule deflated for earlier decisions on the same window. See docs/metrics.md, "Gate".
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..params.evaluation import GateParams
from .metrics import EvaluationInputError, json_safe
from .stats import rank_agents, seed_summary

__all__ = ["SELECTION_RULES", "GateParams", "evaluate_gate", "select_champion"]


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v))


def evaluate_gate(metrics: Mapping, buy_and_hold_metrics: Mapping, params: GateParams | Mapping) -> dict:
    """Apply the gate rules to one record. NaN values fail their rule (unknown is not good).

    ``metrics`` needs ``sharpe``, ``max_drawdown`` and ``psr``; ``buy_and_hold_metrics``
    needs ``sharpe``. Returns ``{"passed": bool, "rules": {name: {value, threshold,
    comparison, passed}}}``, JSON-able (NaN written as None).
    """
    p = params if isinstance(params, GateParams) else GateParams.from_params(params)
    for key in ("sharpe", "max_drawdown", "psr"):
        if key not in metrics:
            raise EvaluationInputError(
                f"metrics: missing '{key}' needed by the gate; compute it first (psr via stats.add_psr_dsr)."
            )
    if "sharpe" not in buy_and_hold_metrics:
        raise EvaluationInputError("buy_and_hold_metrics: missing 'sharpe' needed by the gate.")
    sharpe, mdd, psr = metrics["sharpe"], metrics["max_drawdown"], metrics["psr"]
    bh = buy_and_hold_metrics["sharpe"]
    rules = {
        "min_sharpe": {
            "value": sharpe,
            "threshold": p.min_sharpe,
            "comparison": ">=",
            "passed": _finite(sharpe) and sharpe >= p.min_sharpe,
        },
        "max_drawdown": {
            "value": mdd,
            "threshold": -p.max_drawdown,
            "comparison": ">=",
            "passed": _finite(mdd) and mdd >= -p.max_drawdown,
        },
        "min_psr": {
            "value": psr,
            "threshold": p.min_psr,
            "comparison": ">=",
            "passed": _finite(psr) and psr >= p.min_psr,
        },
    }
    if p.must_beat_buy_and_hold:
        rules["beats_buy_and_hold"] = {
            "value": sharpe,
            "threshold": bh,
            "comparison": ">",
            "passed": _finite(sharpe) and _finite(bh) and sharpe > bh,
        }
    for r in rules.values():
        r["passed"] = bool(r["passed"])
    return json_safe({"passed": all(r["passed"] for r in rules.values()), "rules": rules})


def select_champion(
    validation_records: pd.DataFrame, rank_metric: str = "sharpe", rule: str = "best_candidate"
) -> dict:
    """Choose the champion from VALIDATION metrics only (docs/metrics.md, "Selection").

    Candidates are the agent × seed rows and, with a ``kind`` column, the seed ensembles
    (``kind == "ensemble"``, seed ``ENSEMBLE_SEED``). A ruined account or a non-finite
    ``rank_metric`` is never a champion. Rules:

    * ``best_candidate``: the candidate with the highest ``rank_metric`` (ties: lower agent name,
      then lower seed). One maximum over many noisy candidates: the winner's curse.
    * ``best_agent_best_seed``: the agent ranked first by the cross-seed mean (fewest ruined
      seeds first, ``stats.rank_agents``), then its best seed.
    * ``best_agent_ensemble``: that agent's seed ensemble (its best seed when the ensemble was
      not replayed, was ruined or has no finite ``rank_metric``).

    The gate is NOT applied here: it decides later on the champion's test replay. Returns
    ``{"agent", "seed", "kind", "rule", "rank_metric", "validation": record, "n_candidates",
    "n_ranked"}``; ``agent`` is None (with a reason) when no candidate can be chosen.
    """
    for col in ("agent", "seed", rank_metric):
        if col not in validation_records.columns:
            raise EvaluationInputError(
                f"validation_records: missing column '{col}' (one row per agent × seed)."
            )
    if rule not in SELECTION_RULES:
        raise EvaluationInputError(f"evaluation.selection={rule!r}: choose one of {list(SELECTION_RULES)}.")
    records = validation_records
    if "kind" in records.columns:
        records = records[records["kind"].isin(["agent", "ensemble"])]
    if len(records) == 0:
        raise EvaluationInputError("validation_records: no agent × seed rows to choose from.")
    values = _rank_values(records, rank_metric)
    pool = records[np.isfinite(values)]
    base = {
        "rank_metric": rank_metric,
        "rule": rule,
        "n_candidates": int(len(records)),
        "n_ranked": int(len(pool)),
    }
    if pool.empty:
        return json_safe(
            {
                **base,
                "agent": None,
                "seed": None,
                "kind": None,
                "validation": None,
                "reason": f"no agent × seed has a finite validation {rank_metric}",
            }
        )
    if rule != "best_candidate":
        agent = _best_agent(records, rank_metric)
        pool = pool[pool["agent"].astype(str) == agent]
        kinds = pool["kind"] if "kind" in pool.columns else pd.Series("agent", index=pool.index)
        wanted = "ensemble" if rule == "best_agent_ensemble" and (kinds == "ensemble").any() else "agent"
        pool = pool[kinds == wanted]
        if pool.empty:
            return json_safe(
                {
                    **base,
                    "agent": None,
                    "seed": None,
                    "kind": None,
                    "validation": None,
                    "reason": f"the best agent on validation, {agent}, has no seed with a finite "
                    f"validation {rank_metric}",
                }
            )
    order = pool.assign(
        _m=values[pool.index], _a=pool["agent"].astype(str), _s=pool["seed"].astype(int)
    ).sort_values(["_m", "_a", "_s"], ascending=[False, True, True])
    best = order.iloc[0]
    record = {k: best[k] for k in validation_records.columns}
    kind = str(best["kind"]) if "kind" in best.index else "agent"
    return json_safe(
        {**base, "agent": str(best["agent"]), "seed": int(best["seed"]), "kind": kind, "validation": record}
    )


SELECTION_RULES = ("best_agent_ensemble", "best_agent_best_seed", "best_candidate")


def _rank_values(records: pd.DataFrame, rank_metric: str) -> pd.Series:
    """The metric of every candidate, -inf for a ruined account (never a champion)."""
    values = pd.to_numeric(records[rank_metric], errors="coerce").astype(float)
    if "ruined" in records.columns:
        values = values.where(~records["ruined"].astype(bool), -np.inf)
    return values


def _best_agent(records: pd.DataFrame, rank_metric: str) -> str:
    """The agent ranked first on its seeds' validation mean (``stats.rank_agents``)."""
    seeds = records[records["kind"] == "agent"] if "kind" in records.columns else records
    summary = seed_summary(seeds, [rank_metric])  # with n_ruined when records have "ruined"
    return str(rank_agents(summary, rank_metric).iloc[0]["agent"])
