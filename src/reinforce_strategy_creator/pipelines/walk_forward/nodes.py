"""Nodes of the ``walk_forward`` stage: thin wrappers over :mod:`reinforce_strategy_creator.walk_forward`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ...compute import shared_executor
from ...env import EnvConfig
from ...evaluation.backtests import trading_setup
from ...evaluation.figures import equity_curves_figure
from ...evaluation.verdict import config_sha256
from ...params.compute import ComputeParams
from ...params.evaluation import EvaluationParams
from ...params.features import FeatureParams
from ...params.training import TrainingParams
from ...params.walk_forward import WalkForwardParams
from ...walk_forward import engine
from ...walk_forward.cache import FoldCache
from ...walk_forward.report import render_walk_forward_report
from ...walk_forward.tables import fold_tables

logger = logging.getLogger(__name__)


def _parameters(
    feature_engineering: FeatureParams,
    environment: EnvConfig,
    training: TrainingParams,
    evaluation: EvaluationParams,
    walk_forward: WalkForwardParams,
) -> engine.CycleParameters:
    return engine.CycleParameters(
        FeatureParams.parse(feature_engineering),
        EnvConfig.parse(environment),
        TrainingParams.parse(training),
        EvaluationParams.parse(evaluation),
        WalkForwardParams.parse(walk_forward),
    )


def plan_walk_forward(
    primary_prices: pd.DataFrame,
    feature_engineering: FeatureParams,
    environment: EnvConfig,
    training: TrainingParams,
    evaluation: EvaluationParams,
    walk_forward: WalkForwardParams,
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """The features over the whole history and the fold layout (validated once, for every fold)."""
    params = _parameters(feature_engineering, environment, training, evaluation, walk_forward)
    features, plan = engine.plan(primary_prices, params)
    layout = {"features": features, "plan": plan, "parameters": params}
    return layout, plan.to_dict(), plan.table()


def _fold(layout: dict[str, Any], name: str) -> Any:
    plan = layout["plan"]
    return plan.deployment if name == "deployment" else next(f for f in plan.folds if f.name == name)


def train_folds_node(names: list[str]) -> Callable[..., dict[str, engine.TrainedFold]]:
    """The node that trains the folds ``names`` (``fold_<k>`` and ``deployment``) together."""

    def train_folds(
        layout: dict[str, Any],
        primary_prices: pd.DataFrame,
        fold_cache: FoldCache,
        compute: ComputeParams | None = None,
    ) -> dict[str, engine.TrainedFold]:
        """Every agent × seed of every fold trained on its fold's training window, all folds as jobs
        on the ``compute`` backend at once (folds × seeds of an agent as one population); each
        checkpoint scored on its fold's validation window. Nothing after a fold's validation window
        is read. An unchanged fold (same fingerprint) is loaded from the fold store instead
        (``walk_forward.reuse_folds``) and trains nothing."""
        params = layout["parameters"]
        cache = fold_cache if params.walk_forward.reuse_folds else None
        folds = [_fold(layout, name) for name in names]
        trained = engine.train_folds(
            folds, layout["features"], primary_prices, params, cache=cache, executor=shared_executor(compute)
        )
        for fold in folds:
            how = "trained" if trained[fold.name].stored is None else "loaded from the fold store"
            logger.info("%s (%s): %s", fold.name, fold.label, how)
        return trained

    return train_folds


def fold_node(name: str) -> Callable[..., engine.FoldResult]:
    """The node that selects the champion of fold ``name`` (``fold_<k>`` or ``deployment``)."""

    def select_champion(
        trained: dict[str, engine.TrainedFold],
        layout: dict[str, Any],
        primary_prices: pd.DataFrame,
        fold_cache: FoldCache,
    ) -> engine.FoldResult:
        """The fold's champion and each agent's best seed, chosen on its validation window alone;
        the fold is written to the fold store (``walk_forward.reuse_folds``). A fold loaded from
        the store is passed on as stored."""
        params = layout["parameters"]
        cache = fold_cache if params.walk_forward.reuse_folds else None
        return engine.select_fold(trained[name], primary_prices, params, cache=cache)

    select_champion.__qualname__ = f"select_champion[{name}]"
    return select_champion


def stitch_record(
    layout: dict[str, Any], primary_prices: pd.DataFrame, *results: engine.FoldResult
) -> tuple[engine.StitchedRecord, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One account per lane over every fold's test window; the ledger, metrics and fold table."""
    record = engine.stitch(list(results), layout["features"], primary_prices, layout["parameters"])
    return record, record.ledger, record.records, record.folds


def fold_histories(*results: engine.FoldResult) -> pd.DataFrame:
    """Every fold's training histories (checkpoint validation scores, episode returns, losses)
    in one table with ``fold`` and ``agent`` columns."""
    return engine.training_histories(list(results))


def judge_record(
    record: engine.StitchedRecord,
    layout: dict[str, Any],
    gate_decisions: list,
    tuning_studies: list,
    *results: engine.FoldResult,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The gate on the procedure's stitched record (PSR deflated for earlier decisions on the same
    window and for every trial of a hyperparameter study that looked at it), with PBO and DSR;
    returns the verdict and the decision to append to the registry."""
    params = layout["parameters"]
    return engine.judge(
        record,
        list(results),
        params,
        earlier_decisions=list(gate_decisions or []),
        config=config_sha256(params.to_params()),
        tuning_studies=list(tuning_studies or []),
    )


def stitched_equity_figure(record: engine.StitchedRecord) -> Figure:
    """The stitched equity of the procedure, each agent and the benchmarks (log scale), with the
    fold boundaries marked."""
    ledger = record.ledger
    keep = ledger["kind"].isin(["procedure", "agent_selected", "benchmark"]) & (ledger["seed"] == 0)
    curves = {}
    for (kind, run), lane in ledger[keep].groupby(["kind", "run"], sort=False):
        label = "walk-forward procedure" if kind == "procedure" else str(run)
        curves[label] = lane.set_index("date")["equity"]
    benchmarks = sorted(ledger.loc[ledger["kind"] == "benchmark", "run"].unique())
    fig = equity_curves_figure(curves, benchmarks=benchmarks, title="Stitched out-of-sample equity")
    ax = fig.axes[0]
    for start in record.folds["test_start"].iloc[1:]:
        ax.axvline(pd.Timestamp(start), color="0.6", lw=0.8, ls=":")
    return fig


def deployment_policy(deployment: engine.FoldResult) -> Any:
    """The deployment fold's champion agent (all its seeds: an ensemble needs them), to store as a
    versioned artifact. The deployment fold trains through the year before the paper period and
    selects on that year."""
    agent = deployment.champion["agent"]
    if agent is None:
        raise engine.WalkForwardError(
            f"walk_forward.deployment: no champion ({deployment.champion.get('reason')}); nothing to deploy."
        )
    return deployment.bundles[agent]


def deployment_champion(
    policy: Any, deployment: engine.FoldResult, verdict: dict[str, Any], evaluation: EvaluationParams
) -> dict[str, Any]:
    """``champion``: the deployment fold's champion, stored as ``policy``, carrying the stitched
    record's verdict; what deployment registers, in the same contract as the single split's."""
    return engine.deployment_champion(deployment, verdict, policy, EvaluationParams.parse(evaluation))


def deployment_tables(
    primary_prices: pd.DataFrame,
    feature_engineering: FeatureParams,
    environment: EnvConfig,
    training: TrainingParams,
    evaluation: EvaluationParams,
    walk_forward: WalkForwardParams,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``feature_scaler`` and ``model_input_train`` of the deployment fold (its scaler, fit on its
    training rows, and those rows scaled): what deployment scales live bars with and calibrates
    drift on. The same tables the deployment fold trained on (``walk_forward.tables``)."""
    params = _parameters(feature_engineering, environment, training, evaluation, walk_forward)
    features, plan = engine.plan(primary_prices, params)
    window, kind = params.environment.window, params.feature_engineering.scaler
    tables = fold_tables(features, primary_prices, plan.deployment, window, kind)
    return tables.scaler, tables.train


def render_report(record: engine.StitchedRecord, verdict: dict[str, Any], environment: EnvConfig) -> str:
    """The walk-forward tear sheet (HTML): verdict and why, side-by-side metrics, stitched equity
    first; then the gate's rules, folds, per-fold Sharpe, selection effort and setup."""
    setup = trading_setup(EnvConfig.parse(environment))
    figure = stitched_equity_figure(record)
    return render_walk_forward_report(verdict, record.records, record.folds, figure, setup)
