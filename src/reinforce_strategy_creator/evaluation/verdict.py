"""The promotion verdict: decided on returns no selection has seen, with every look counted.

What (definitions in docs/metrics.md, "Gate"):

* ``selection_effort`` counts the trials scored on the selection (validation) window: every
  checkpoint evaluation of every seed of every agent, read from the training histories
  (``eval_score``). The champion's validation Sharpe is deflated by that count (DSR).
* ``window_reuse`` reads the gate decisions recorded earlier (in the model registry) and counts
  those made on the same out-of-sample window (same dates, same data fingerprint): how many, and
  from how many distinct configurations (``config_sha256``).
* ``deflated_psr`` is the PSR of the decided-on returns against buy-and-hold's Sharpe plus the
  Sharpe that the best of N unskilled attempts would reach by luck, N = the number of distinct
  configurations gated on this window (the current one included). On a fresh window N = 1 and
  it equals the plain PSR against buy-and-hold; every new configuration tried on the same window
  raises the bar, so re-running until something passes is visible and penalised.
* ``decide`` applies the gate to the champion's single replay of the out-of-sample window and
  writes the verdict and the decision record to store.

Why hand-written: the Sharpe-ratio statistics are in ``stats`` (written from the papers); what is
specific here is which returns and which counts go in, which no library knows.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .gate import GateParams, evaluate_gate
from .metrics import EvaluationInputError, json_safe
from .stats import deflated_sharpe_ratio, expected_max_sharpe, record_psr

__all__ = [
    "CONFIG_EXCLUDED",
    "config_sha256",
    "decide",
    "deflated_psr",
    "null_sharpe_variance",
    "selection_effort",
    "tuning_looks",
    "window_fingerprint",
    "window_reuse",
]

#: Parameters that cannot change any number a run reports (display, threads, devices, paths of
#: outputs, deployment): left out of the configuration fingerprint, so changing them is not a new
#: configuration. Everything else (data handling, features, environment, agents, seeds, budgets,
#: selection and gate thresholds) is in it.
CONFIG_EXCLUDED = (
    ("data_ingestion", "filepath"),
    ("training", "*", "progress"),
    ("training", "*", "num_threads"),
    ("training", "*", "device"),
    ("environment", "device"),
    ("evaluation", "rolling_window"),
    ("evaluation", "policy_filepath_pattern"),
    ("deployment",),
)
PRICE_COLUMNS = ("Open", "High", "Low", "Close", "Volume")


def _drop(tree: Any, path: Sequence[str]) -> None:
    if not isinstance(tree, dict) or not path:
        return
    head, rest = path[0], path[1:]
    keys = list(tree) if head == "*" else ([head] if head in tree else [])
    for k in keys:
        if rest:
            _drop(tree[k], rest)
        else:
            tree.pop(k, None)


def _sha256(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def config_sha256(parameters: Mapping[str, Any]) -> str:
    """Fingerprint of the configuration that produced a verdict: every parameter except
    ``CONFIG_EXCLUDED``, as canonical JSON."""
    tree = json_safe(copy.deepcopy(dict(parameters)))
    for path in CONFIG_EXCLUDED:
        _drop(tree, path)
    return _sha256(tree)


def window_fingerprint(table: pd.DataFrame) -> str:
    """Fingerprint of the returns a verdict decides on: the dates and raw OHLCV of the window
    (not the scaled features, which change with the scaler while the returns stay the same)."""
    cols = [c for c in PRICE_COLUMNS if c in table.columns]
    if not cols or not isinstance(table.index, pd.DatetimeIndex):
        raise EvaluationInputError(
            "window: expected a table of dated bars with price columns to fingerprint."
        )
    frame = table[cols].astype(np.float64)
    return _sha256(
        {
            "dates": [d.isoformat() for d in frame.index],
            "values": pd.util.hash_pandas_object(frame, index=False).astype(str).tolist(),
        }
    )


# --------------------------------------------------------------------------- selection effort
def selection_effort(
    histories: Mapping[str, pd.DataFrame], periods_per_year: float, ensembles: pd.DataFrame | None = None
) -> dict:
    """Trials scored on the selection window: every non-missing ``eval_score`` (validation
    Sharpe, annualised) of every seed of every agent's training history, plus every seed
    ensemble's validation replay (rows of ``ensembles``: ``agent``, ``sharpe``)."""
    by_agent, scores = {}, []
    for agent, h in sorted(histories.items()):
        if not isinstance(h, pd.DataFrame) or "eval_score" not in h.columns:
            raise EvaluationInputError(
                f"training.{agent}.history: missing column 'eval_score' (validation Sharpe of every "
                "checkpoint "
                "evaluation); it is needed to count the selection trials. Re-run training."
            )
        s = pd.to_numeric(h["eval_score"], errors="coerce")
        # -inf (a wiped-out checkpoint) is a trial that was looked at: counted, not in the variance
        seen = s[s.notna()]
        by_agent[agent] = int(len(seen))
        scores.extend(seen.tolist())
    for row in [] if ensembles is None else ensembles.to_dict("records"):
        by_agent[str(row["agent"])] = by_agent.get(str(row["agent"]), 0) + 1
        scores.append(-math.inf if row.get("ruined") else float(row["sharpe"]))
    per_bar = np.asarray(scores, dtype=float) / math.sqrt(periods_per_year)
    finite = per_bar[np.isfinite(per_bar)]
    return {
        "n_trials": int(len(scores)),
        "trials_by_agent": by_agent,
        "trial_sharpe_per_bar": per_bar.tolist(),
        "trial_sharpe_variance_per_bar": float(np.var(finite, ddof=1)) if finite.size > 1 else 0.0,
    }


# --------------------------------------------------------------------------- window reuse
def window_reuse(
    decisions: Sequence[Mapping[str, Any]], data_fingerprint: str, window: Mapping[str, str], config: str
) -> dict:
    """Earlier gate decisions on the same window (same dates and data) and their configurations.

    ``n_configurations`` is the number of distinct configurations gated on this window with the
    current one included: the N of the deflation.
    """
    same = [
        d
        for d in decisions
        if d.get("data_fingerprint") == data_fingerprint and dict(d.get("window") or {}) == dict(window)
    ]
    configs = {d.get("config_sha256") for d in same}
    return {
        "earlier_decisions": len(same),
        "earlier_passed": sum(bool(d.get("passed")) for d in same),
        "earlier_configurations": len(configs),
        "current_configuration_seen_before": config in configs,
        "n_configurations": len(configs | {config}),
    }


def tuning_looks(studies: Sequence[Mapping[str, Any]], window: Mapping[str, str]) -> dict:
    """Hyperparameter-study trials that looked at ``window``: every recorded study (model registry
    ``tuning_study`` events) with a validation window that overlaps it by date. A study recorded
    more than once (rerun, resumed) counts once, with its latest (largest) trial count; studies are
    told apart by storage and name. Each trial is one more configuration tried on those returns.

    Overlap is by dates only (a study on another instrument over the same dates counts too): the
    cautious side, since the study's windows carry no fingerprint of the stitched returns."""
    start, end = str(window["start"])[:10], str(window["end"])[:10]
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for study in studies:
        key = (str(study.get("storage")), str(study.get("study_name")))
        if key not in latest or int(study["trials_counted"]) >= int(latest[key]["trials_counted"]):
            latest[key] = study
    overlapping = []
    for (storage, name), study in sorted(latest.items()):
        hits = [
            w
            for w in study.get("windows") or []
            if str(w["start"])[:10] <= end and str(w["end"])[:10] >= start
        ]
        if hits:
            overlapping.append(
                {
                    "study_name": name,
                    "storage": storage,
                    "trials": int(study["trials_counted"]),
                    "overlapping_windows": [{"start": w["start"], "end": w["end"]} for w in hits],
                    "config_sha256": study.get("config_sha256"),
                }
            )
    return {"trials": sum(s["trials"] for s in overlapping), "studies": overlapping}


def null_sharpe_variance(n_obs: int, benchmark_sharpe_per_bar: float) -> float:
    """Sampling variance of a per-bar Sharpe estimate over ``n_obs`` i.i.d. normal returns whose
    true Sharpe is the benchmark's (Lo 2002): the spread of N unskilled attempts' Sharpes."""
    sr = benchmark_sharpe_per_bar if math.isfinite(benchmark_sharpe_per_bar) else 0.0
    return (1.0 + 0.5 * sr * sr) / max(n_obs - 1, 1)


def deflated_psr(record: Mapping[str, Any], benchmark_sharpe_per_bar: float, n_configurations: int) -> dict:
    """PSR against buy-and-hold's Sharpe plus the expected best Sharpe of N unskilled attempts;
    NaN for a ruined record or one with fewer than 2 returns (``stats.record_psr``)."""
    n = int(record["n_bars"])
    ruined = record.get("ruined")
    var = null_sharpe_variance(n, benchmark_sharpe_per_bar)
    sr0 = expected_max_sharpe(max(int(n_configurations), 1), var)
    hurdle = benchmark_sharpe_per_bar + sr0
    value = record_psr(
        float(record["sharpe_per_bar"]),
        hurdle,
        n,
        finite_or(record.get("skew"), 0.0),
        finite_or(record.get("kurtosis"), 3.0),
        bool(ruined) if isinstance(ruined, (bool, np.bool_)) else False,
    )
    return {
        "value": value,
        "n_configurations": int(n_configurations),
        "null_sharpe_variance_per_bar": var,
        "expected_max_unskilled_sharpe_per_bar": sr0,
        "hurdle_sharpe_per_bar": hurdle,
    }


def finite_or(v, default: float) -> float:
    """``float(v)`` when it is a finite number, else ``default`` (a missing skew or kurtosis)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


# --------------------------------------------------------------------------- the decision
def decide(
    *,
    champion_validation: Mapping[str, Any],
    champion_test: Mapping[str, Any],
    test_buy_and_hold: Mapping[str, Any],
    params: GateParams,
    effort: Mapping[str, Any],
    earlier_decisions: Sequence[Mapping[str, Any]],
    window: Mapping[str, str],
    data_fingerprint: str,
    config: str,
) -> tuple[dict, dict]:
    """Gate the champion's single out-of-sample replay; return ``(verdict, decision_record)``.

    The rules are those of ``GateParams`` applied to the TEST record; the ``min_psr`` rule uses the
    PSR deflated by the number of distinct configurations gated on this window.
    """
    reuse = window_reuse(earlier_decisions, data_fingerprint, window, config)
    bh_sr = float(test_buy_and_hold["sharpe_per_bar"])
    dpsr = deflated_psr(champion_test, bh_sr, reuse["n_configurations"])
    record = {**dict(champion_test), "psr": dpsr["value"]}
    gate = evaluate_gate(record, test_buy_and_hold, params)
    gate["rules"]["min_psr"]["deflated_by_configurations"] = reuse["n_configurations"]
    gate["rules"]["min_psr"]["plain_psr_vs_buy_and_hold"] = champion_test.get("psr")
    n_val = int(champion_validation["n_bars"])
    val_sr = float(champion_validation["sharpe_per_bar"])
    trials = effort["trial_sharpe_per_bar"] or [val_sr]
    val_dsr = deflated_sharpe_ratio(
        val_sr,
        n_val,
        trials,
        finite_or(champion_validation.get("skew"), 0.0),
        finite_or(champion_validation.get("kurtosis"), 3.0),
    )
    verdict = {
        "passed": bool(gate["passed"]),
        "decided_on": {
            "split": "test",
            **dict(window),
            "n_bars": int(champion_test["n_bars"]),
            "data_fingerprint": data_fingerprint,
            "what": "the champion's single replay of the test window, after selection on validation",
        },
        "rules": gate["rules"],
        "thresholds": params.to_dict(),
        "selection": {
            "selected_on": "validation",
            "n_trials": effort["n_trials"],
            "trials_by_agent": effort["trials_by_agent"],
            "what_counts_as_a_trial": "every checkpoint evaluation of every seed of every agent on "
            "validation, "
            "and every seed ensemble's validation replay",
            "champion_validation_sharpe": champion_validation.get("sharpe"),
            "validation_dsr": val_dsr,
        },
        "window_reuse": {k: v for k, v in reuse.items()},
        "deflation": dpsr,
        "config_sha256": config,
    }
    decision = {
        "data_fingerprint": data_fingerprint,
        "window": dict(window),
        "config_sha256": config,
        "passed": bool(gate["passed"]),
        "decided_on": "test",
        "sharpe": champion_test.get("sharpe"),
        "n_bars": int(champion_test["n_bars"]),
        "deflated_psr": dpsr["value"],
        "n_configurations": reuse["n_configurations"],
    }
    return json_safe(verdict), json_safe(decision)
