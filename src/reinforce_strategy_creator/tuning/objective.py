"""The objective of a trial: the mean validation Sharpe over walk-forward folds.

:func:`tuning_data` lays the folds out on the price index exactly as the walk-forward does
(``walk_forward.folds.plan_folds``; the layout depends on the dates only) and keeps the prices
**up to the last tuned fold's validation end**: the features are computed on those rows alone, so
no test window and no paper-period bar is ever read (changing them changes nothing,
tests/tuning/test_objective.py). :func:`evaluate_config` trains a trial's ``training.<agent>``
block on each fold's training rows (the fold's own scaler, ``walk_forward.tables``), scores every
seed's best checkpoint on the fold's validation window (``training.train_agent``, as
``walk_forward.engine.run_fold`` does) and reports the running mean after each fold (for the
pruner).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..env import EnvConfig
from ..features import compute_features, max_lookback
from ..params.base import ParameterError
from ..params.features import FeatureParams
from ..params.training import AgentPlan, TrainingCommon, plan_agent
from ..params.tuning import TuningParams
from ..params.walk_forward import WalkForwardParams
from ..walk_forward.folds import Fold, plan_folds
from ..walk_forward.tables import fold_tables

__all__ = ["RUINED_SHARPE", "TuningData", "evaluate_config", "trial_plan", "tuning_data"]

#: the score of a seed whose every checkpoint wiped out its account (validation Sharpe -inf):
#: a finite floor so that the sampler learns the region is bad (recorded per trial as ``ruined_seeds``).
#: A fold whose training diverges (NaN/inf loss, ``TrainingDivergedError``) scores the same for
#: every seed (recorded as ``diverged_folds`` with the error): the configuration is bad, not the code.
RUINED_SHARPE = -10.0


@dataclass(frozen=True)
class TuningData:
    """What a trial may read: prices and unscaled features up to the last validation end, and the
    folds (their test windows dropped)."""

    prices: pd.DataFrame
    features: pd.DataFrame
    folds: tuple[Fold, ...]
    parameters: dict[str, Any]

    def windows(self) -> list[dict[str, Any]]:
        """The validation windows a trial looks at (one per fold)."""
        return [
            {
                "fold": f.name,
                "label": f.label,
                "start": f.validation.start.date().isoformat(),
                "end": f.validation.end.date().isoformat(),
                "n_bars": int(f.validation.n_bars),
                "train_start": f.train.start.date().isoformat(),
                "train_end": f.train.end.date().isoformat(),
            }
            for f in self.folds
        ]


def tuning_data(prices: pd.DataFrame, parameters: Mapping[str, Any], tuning: TuningParams) -> TuningData:
    """The folds of the walk-forward layout the study scores on, and the data they may read."""
    fe = FeatureParams.parse(parameters["feature_engineering"])
    wf = WalkForwardParams.parse(parameters.get("walk_forward") or {})
    spec = fe.features.to_params()
    plan = plan_folds(prices.index, wf, embargo_bars=0, warmup_bars=max_lookback(spec))
    if tuning.folds is not None and tuning.folds > len(plan.folds):
        raise ParameterError(
            f"tuning.folds: {tuning.folds} but the walk-forward layout has {len(plan.folds)} folds "
            f"(walk_forward.folds); use at most {len(plan.folds)} or null."
        )
    folds = plan.folds if tuning.folds is None else plan.folds[-tuning.folds :]
    stop = max(f.validation.stop_row for f in folds)
    seen = prices.iloc[:stop].copy()  # nothing after the last validation window
    features = compute_features(seen, spec)
    folds = tuple(dataclasses.replace(f, test=None) for f in folds)
    kept = {k: copy.deepcopy(parameters[k]) for k in ("feature_engineering", "environment", "training")}
    kept["walk_forward"] = wf.to_params()
    return TuningData(seen, features, folds, kept)


def trial_plan(training: Mapping[str, Any], tuning: TuningParams, values: Mapping[str, Any]) -> AgentPlan:
    """The ``training.<agent>`` block with a trial's values (and the tuning budget) applied,
    validated as training validates it."""
    raw = dict(training)
    common = TrainingCommon.parse(raw.get("common"), "training.common")
    block = {**copy.deepcopy(dict(raw[tuning.agent])), **dict(values)}
    if tuning.total_steps is not None:
        block["total_steps"] = tuning.total_steps
    if tuning.seeds is not None:
        block["seeds"] = list(tuning.seeds)
    block["progress"] = False  # display only; the trial's numbers do not depend on it
    return plan_agent(common, block, tuning.agent)


def evaluate_config(
    plan: AgentPlan,
    data: TuningData,
    report: Callable[[float, int], None] | None = None,
) -> dict[str, Any]:
    """Train ``plan`` on every fold and score it on the fold's validation window.

    Returns ``{"value": mean over folds, "folds": [{fold, sharpe (mean over seeds), seeds:
    {seed: best-checkpoint Sharpe}}], "ruined_seeds", "checkpoint_evaluations"}``. ``report(value,
    step)`` is called with the running mean after each fold (it may raise to prune)."""
    from ..agents import TrainingDivergedError
    from ..training import train_agent  # torch: imported only when a trial trains

    env = EnvConfig.parse(data.parameters["environment"])
    fe = FeatureParams.parse(data.parameters["feature_engineering"])
    rows, ruined, evaluations, diverged = [], 0, 0, []
    for step, fold in enumerate(data.folds):
        tables = fold_tables(data.features, data.prices, fold, env.window, fe.scaler)
        try:
            bundle, history = train_agent(
                tables.train,
                tables.validation,
                tables.scaler,
                env,
                plan,
                feature_spec=fe.features.to_params(),
                validation_history=tables.history_rows,
            )
        except TrainingDivergedError as exc:
            diverged.append({"fold": fold.name, "error": str(exc)})
            seeds = {str(s): RUINED_SHARPE for s in plan.settings.seeds}
            rows.append({"fold": fold.name, "label": fold.label, "sharpe": RUINED_SHARPE, "seeds": seeds})
            if report is not None:
                report(sum(r["sharpe"] for r in rows) / len(rows), step)
            continue
        evaluations += int(pd.to_numeric(history["eval_score"], errors="coerce").notna().sum())
        seeds = {}
        for seed, score in bundle.spec["validation_scores"].items():
            finite = score is not None and math.isfinite(score)
            ruined += 0 if finite else 1
            seeds[str(seed)] = float(score) if finite else RUINED_SHARPE
        sharpe = sum(seeds.values()) / len(seeds)
        rows.append({"fold": fold.name, "label": fold.label, "sharpe": sharpe, "seeds": seeds})
        if report is not None:
            report(sum(r["sharpe"] for r in rows) / len(rows), step)
    return {
        "value": sum(r["sharpe"] for r in rows) / len(rows),
        "folds": rows,
        "ruined_seeds": ruined,
        "diverged_folds": diverged,
        "checkpoint_evaluations": evaluations,
    }
