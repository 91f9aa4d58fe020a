"""Deployment gate and champion selection.

What: a trained agent×seed may be promoted only if it passes explicit, configured rules
(minimum Sharpe, worst drawdown allowed, beating buy-and-hold, minimum PSR). The verdict is
a JSON-able dict with, per rule, the value, the threshold and pass/fail, so a reader can see
why something was (not) promoted.

Champion selection uses the VALIDATION period only: ``select_champion`` never sees test
metrics. ``champion_with_test`` calls it first and only then looks up the champion's TEST
record, which is reported as-is (with an informational gate verdict on test that cannot
change the choice). This keeps the test period an honest out-of-sample estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .metrics import EvaluationInputError, json_safe

__all__ = ["GateParams", "evaluate_gate", "gate_records", "select_champion", "champion_with_test"]

PARAM_PREFIX = "evaluation.gate"


class GateParams:
    """Validated gate thresholds.

    * ``min_sharpe`` — annualised Sharpe must be >= this;
    * ``max_drawdown`` — positive fraction; the max drawdown must not be worse than
      ``-max_drawdown`` (0.3 = at most a 30 % fall from a peak);
    * ``must_beat_buy_and_hold`` — Sharpe must be strictly above buy-and-hold's on the
      same period;
    * ``min_psr`` — probabilistic Sharpe ratio vs buy-and-hold must be >= this (0–1).
    """

    KEYS = ("min_sharpe", "max_drawdown", "must_beat_buy_and_hold", "min_psr")

    def __init__(self, min_sharpe: float, max_drawdown: float, must_beat_buy_and_hold: bool, min_psr: float):
        self.min_sharpe = float(min_sharpe)
        self.max_drawdown = float(max_drawdown)
        self.must_beat_buy_and_hold = bool(must_beat_buy_and_hold)
        self.min_psr = float(min_psr)

    @classmethod
    def from_params(cls, params: Mapping, prefix: str = PARAM_PREFIX) -> GateParams:
        if not isinstance(params, Mapping):
            raise EvaluationInputError(f"{prefix}: expected a mapping of gate thresholds, got {type(params).__name__}.")
        unknown = sorted(set(params) - set(cls.KEYS))
        if unknown:
            raise EvaluationInputError(
                f"{prefix}.{unknown[0]}: unknown gate threshold (unknown key(s) {unknown}); allowed keys are "
                f"{list(cls.KEYS)}. Fix it in conf/base/parameters_evaluation.yml."
            )
        missing = [k for k in cls.KEYS if k not in params]
        if missing:
            raise EvaluationInputError(f"{prefix}: missing key(s) {missing}; set them in conf/base/parameters_evaluation.yml.")

        def num(key):
            v = params[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise EvaluationInputError(f"{prefix}.{key}: must be a finite number, got {v!r}.")
            return float(v)

        mdd = num("max_drawdown")
        if not 0 < mdd <= 1:
            raise EvaluationInputError(
                f"{prefix}.max_drawdown: must be a positive fraction in (0, 1] (0.3 = 30 % drawdown allowed), got {mdd!r}."
            )
        psr = num("min_psr")
        if not 0 <= psr <= 1:
            raise EvaluationInputError(f"{prefix}.min_psr: must be a probability in [0, 1], got {psr!r}.")
        beat = params["must_beat_buy_and_hold"]
        if not isinstance(beat, bool):
            raise EvaluationInputError(f"{prefix}.must_beat_buy_and_hold: must be true or false, got {beat!r}.")
        return cls(num("min_sharpe"), mdd, beat, psr)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.KEYS}


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


def gate_records(records: pd.DataFrame, buy_and_hold_metrics: Mapping, params) -> pd.DataFrame:
    """Gate every agent×seed row; adds a boolean ``gate_passed`` column."""
    p = params if isinstance(params, GateParams) else GateParams.from_params(params)
    out = records.copy()
    out["gate_passed"] = [evaluate_gate(r, buy_and_hold_metrics, p)["passed"] for r in records.to_dict("records")]
    return out


def select_champion(
    validation_records: pd.DataFrame,
    validation_buy_and_hold: Mapping,
    params,
    rank_metric: str = "sharpe",
    require_pass: bool = True,
) -> dict:
    """Choose the champion from VALIDATION metrics only.

    Among agent×seed rows that pass the gate on validation, the one with the highest
    ``rank_metric`` wins; ties go to the lower agent name then lower seed, so the result is
    deterministic. Returns ``{"agent", "seed", "rank_metric", "validation": record,
    "validation_verdict": verdict, "n_candidates", "n_passed", "passed_gate"}``.

    When nothing passes: with ``require_pass=True`` (default) ``agent`` is None with a
    reason; with ``require_pass=False`` the best row on validation is returned anyway
    (same ordering, finite ``rank_metric`` only) with ``passed_gate: False`` and a reason,
    so a caller can report it but must not promote it.
    """
    for col in ("agent", "seed", rank_metric):
        if col not in validation_records.columns:
            raise EvaluationInputError(f"validation_records: missing column '{col}' (one row per agent × seed).")
    if len(validation_records) == 0:
        raise EvaluationInputError("validation_records: no agent × seed rows to choose from.")
    p = params if isinstance(params, GateParams) else GateParams.from_params(params)
    gated = gate_records(validation_records, validation_buy_and_hold, p)
    passing = gated[gated["gate_passed"] & np.isfinite(gated[rank_metric].astype(float))]
    base = {"rank_metric": rank_metric, "n_candidates": int(len(gated)), "n_passed": int(len(passing)),
            "gate_params": p.to_dict()}
    passed_gate = not passing.empty
    pool = passing
    if not passed_gate:
        pool = gated[np.isfinite(gated[rank_metric].astype(float))]
        if require_pass or pool.empty:
            return json_safe({**base, "agent": None, "seed": None, "validation": None, "validation_verdict": None,
                              "passed_gate": False,
                              "reason": "no agent × seed passed the gate on the validation period"
                              + ("" if pool.empty or require_pass else f" and none has a finite {rank_metric}")})
        base["reason"] = (f"no agent × seed passed the gate on the validation period; this is the best "
                          f"validation {rank_metric} and must not be promoted")
    order = pool.assign(_a=pool["agent"].astype(str), _s=pool["seed"].astype(int)).sort_values(
        [rank_metric, "_a", "_s"], ascending=[False, True, True])
    best = order.iloc[0]
    record = {k: best[k] for k in validation_records.columns}
    return json_safe({**base, "agent": str(best["agent"]), "seed": int(best["seed"]), "validation": record,
                      "validation_verdict": evaluate_gate(record, validation_buy_and_hold, p),
                      "passed_gate": passed_gate})


def champion_with_test(
    validation_records: pd.DataFrame,
    validation_buy_and_hold: Mapping,
    test_records: pd.DataFrame,
    test_buy_and_hold: Mapping,
    params,
    rank_metric: str = "sharpe",
    require_pass: bool = True,
) -> dict:
    """Select on validation (test unseen), then attach the champion's TEST record as-is and
    an informational test verdict (which does not change the choice). ``require_pass`` as in
    ``select_champion``."""
    champion = select_champion(validation_records, validation_buy_and_hold, params, rank_metric, require_pass)
    if champion["agent"] is None:
        return {**champion, "test": None, "test_verdict": None}
    match = test_records[(test_records["agent"].astype(str) == champion["agent"])
                         & (test_records["seed"].astype(int) == champion["seed"])]
    if len(match) != 1:
        raise EvaluationInputError(
            f"test_records: expected exactly one row for agent '{champion['agent']}' seed {champion['seed']}, "
            f"found {len(match)}; evaluate every validated agent × seed on the test period once."
        )
    record = match.iloc[0].to_dict()
    return json_safe({**champion, "test": record,
                      "test_verdict": evaluate_gate(record, test_buy_and_hold, params)})
