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

__all__ = ["GateParams", "evaluate_gate", "select_champion"]



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
            raise EvaluationInputError(f"metrics: missing '{key}' needed by the gate; compute it first (psr via stats.add_psr_dsr).")
    if "sharpe" not in buy_and_hold_metrics:
        raise EvaluationInputError("buy_and_hold_metrics: missing 'sharpe' needed by the gate.")
    sharpe, mdd, psr = metrics["sharpe"], metrics["max_drawdown"], metrics["psr"]
    bh = buy_and_hold_metrics["sharpe"]
    rules = {
        "min_sharpe": {"value": sharpe, "threshold": p.min_sharpe, "comparison": ">=",
                       "passed": _finite(sharpe) and sharpe >= p.min_sharpe},
        "max_drawdown": {"value": mdd, "threshold": -p.max_drawdown, "comparison": ">=",
                         "passed": _finite(mdd) and mdd >= -p.max_drawdown},
        "min_psr": {"value": psr, "threshold": p.min_psr, "comparison": ">=",
                    "passed": _finite(psr) and psr >= p.min_psr},
    }
    if p.must_beat_buy_and_hold:
        rules["beats_buy_and_hold"] = {"value": sharpe, "threshold": bh, "comparison": ">",
                                       "passed": _finite(sharpe) and _finite(bh) and sharpe > bh}
    for r in rules.values():
        r["passed"] = bool(r["passed"])
    return json_safe({"passed": all(r["passed"] for r in rules.values()), "rules": rules})


def select_champion(validation_records: pd.DataFrame, rank_metric: str = "sharpe") -> dict:
    """Choose the champion from VALIDATION metrics only: the agent × seed with the highest finite
    ``rank_metric`` whose account was not ruined; ties go to the lower agent name, then the lower
    seed (deterministic).

    The gate is NOT applied here: it decides later on the champion's test replay. Returns
    ``{"agent", "seed", "rank_metric", "validation": record, "n_candidates", "n_ranked"}``;
    ``agent`` is None (with a reason) when no candidate has a finite ``rank_metric``.
    """
    for col in ("agent", "seed", rank_metric):
        if col not in validation_records.columns:
            raise EvaluationInputError(f"validation_records: missing column '{col}' (one row per agent × seed).")
    if len(validation_records) == 0:
        raise EvaluationInputError("validation_records: no agent × seed rows to choose from.")
    values = pd.to_numeric(validation_records[rank_metric], errors="coerce").astype(float)
    if "ruined" in validation_records.columns:  # a wiped-out account is never a champion
        values = values.where(~validation_records["ruined"].astype(bool), -np.inf)
    pool = validation_records[np.isfinite(values)]
    base = {"rank_metric": rank_metric, "n_candidates": int(len(validation_records)), "n_ranked": int(len(pool))}
    if pool.empty:
        return json_safe({**base, "agent": None, "seed": None, "validation": None,
                          "reason": f"no agent × seed has a finite validation {rank_metric}"})
    order = pool.assign(_m=values[pool.index], _a=pool["agent"].astype(str), _s=pool["seed"].astype(int)).sort_values(
        ["_m", "_a", "_s"], ascending=[False, True, True])
    best = order.iloc[0]
    record = {k: best[k] for k in validation_records.columns}
    return json_safe({**base, "agent": str(best["agent"]), "seed": int(best["seed"]), "validation": record})
