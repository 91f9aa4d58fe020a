"""Nodes of the ``portfolio`` stage: thin wrappers over the library (``walk_forward.universe``,
``panel``, ``evaluation``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ...agents.ensemble import PolicyLanes
from ...compute import shared_executor
from ...deployment.account import PaperAccount
from ...deployment.drift import DriftMonitor, build_reference, calibrate_thresholds, drift_report
from ...deployment.risk import RiskLimits
from ...deployment.state import last_session
from ...env.config import EnvConfig
from ...evaluation import allocation_figures as figures
from ...evaluation.figures import equity_curves_figure
from ...evaluation.metrics import json_safe
from ...evaluation.replay import lane_run
from ...evaluation.report import figure_to_base64_png
from ...evaluation.verdict import config_sha256
from ...features import max_lookback
from ...market_data import DataValidationError
from ...panel import PortfolioInputError, portfolio_features
from ...params.compute import ComputeParams
from ...params.deployment import DeploymentParams
from ...params.evaluation import EvaluationParams
from ...params.features import FeatureParams
from ...params.portfolio import PortfolioParams
from ...params.walk_forward import WalkForwardParams
from ...rendering import render_html
from ...universe import Universe, universe_from_wide
from ...walk_forward import universe as uwf
from ...walk_forward.cache import FoldCache
from ...walk_forward.engine import FoldResult, StitchedRecord, judge
from ...walk_forward.engine import deployment_champion as champion_document
from ...walk_forward.folds import plan_folds
from ...walk_forward.report import walk_forward_context
from ..deployment.nodes import request_registration
from ..walk_forward.nodes import stitched_equity_figure as walk_forward_equity_figure

logger = logging.getLogger(__name__)


def index_close(raw_index: pd.DataFrame, universe: Universe, portfolio: PortfolioParams) -> pd.Series:
    """The index close aligned to the universe's dates when ``portfolio.index.column`` is set (a
    universe date the index lacks is an error naming it), else an empty series (no index
    benchmark; a catalog dataset cannot hold ``None``)."""
    p = PortfolioParams.parse(portfolio).index
    if p.column is None:
        return pd.Series(dtype="float64", name="no index")
    source = (
        str(raw_index.attrs.get("source") or p.filepath)
        if isinstance(raw_index, pd.DataFrame)
        else p.filepath
    )
    s = universe_from_wide(raw_index, source=source, tickers=[p.column]).field("Close")[
        p.column.strip().upper()
    ]
    missing = universe.prices.index.difference(s.dropna().index)
    missing = missing[missing >= s.first_valid_index()]
    if len(missing):
        raise DataValidationError(
            f"{source}: the index column {p.column!r} has no close on {len(missing)} date(s) the "
            f"universe trades, first {missing[0].date()}; give an index file covering the universe's "
            "dates or set portfolio.index.column: null"
        )
    return s.reindex(universe.prices.index)


def build_panel(
    universe: Universe, feature_engineering: FeatureParams, portfolio: PortfolioParams
) -> tuple[Any, pd.DataFrame, dict[str, Any]]:
    """The per-ticker raw causal features (features that need fields the universe lacks are left
    out with one warning), as a panel and as a long table for notebooks."""
    fe = FeatureParams.parse(feature_engineering)
    panel = portfolio_features(universe, fe.features.to_params())
    table = pd.DataFrame(
        panel.features.reshape(panel.n_bars * panel.n_assets, panel.n_features),
        columns=list(panel.feature_names),
    )
    table.insert(0, "ticker", list(panel.tickers) * panel.n_bars)
    table.insert(0, "date", panel.dates.repeat(panel.n_assets))
    info = {"features": list(panel.feature_names), "tickers": list(panel.tickers), "n_bars": panel.n_bars}
    return panel, table, info


def plan_portfolio(
    panel: Any,
    walk_forward: WalkForwardParams,
    feature_engineering: FeatureParams,
    portfolio: PortfolioParams,
    evaluation: EvaluationParams,
    environment: EnvConfig,
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """The fold layout on the panel's dates (validated once, for every fold); the layout carries
    the typed ``environment`` every later node trades under."""
    p = PortfolioParams.parse(portfolio)
    fe = FeatureParams.parse(feature_engineering)
    env = EnvConfig.parse(environment)
    warmup = max_lookback(fe.features.to_params()) + env.window - 1
    plan = plan_folds(panel.dates, WalkForwardParams.parse(walk_forward), embargo_bars=0, warmup_bars=warmup)
    parameters = {
        "environment": env.to_params(),
        "portfolio": p.to_params(),
        "feature_engineering": fe.to_params(),
        "walk_forward": WalkForwardParams.parse(walk_forward).to_params(),
        "evaluation": EvaluationParams.parse(evaluation).to_params(),
    }
    layout = {"panel": panel, "plan": plan, "parameters": parameters, "environment": env}
    return layout, plan.to_dict(), plan.table()


def fold_node(name: str) -> Callable[..., FoldResult]:
    """The node that trains and selects fold ``name`` (``fold_<k>`` or ``deployment``)."""

    def train_and_select(
        layout: dict[str, Any],
        index_close: pd.Series | None,
        fold_cache: FoldCache,
        compute: ComputeParams | None = None,
    ) -> FoldResult:
        """Every portfolio agent x seed trained on the fold's training rows (jobs on the ``compute``
        backend), the champion chosen on its validation window; nothing later is read. An
        unchanged fold (same fingerprint) is loaded from the fold store instead and trains
        nothing, a trained one is stored there (``walk_forward.reuse_folds``)."""
        plan = layout["plan"]
        fold = plan.deployment if name == "deployment" else next(f for f in plan.folds if f.name == name)
        params = layout["parameters"]
        result = uwf.run_fold(
            fold,
            layout["panel"],
            PortfolioParams.parse(params["portfolio"]),
            EvaluationParams.parse(params["evaluation"]),
            executor=shared_executor(compute),
            index_close=_index(index_close),
            cache=fold_cache if params["walk_forward"]["reuse_folds"] else None,
            environment=layout["environment"],
        )
        c = result.champion
        how = "loaded from the fold store" if result.from_cache else "trained"
        logger.info(
            "portfolio %s (%s): %s, champion %s seed %s", name, fold.label, how, c["agent"], c["seed"]
        )
        return result

    train_and_select.__qualname__ = f"train_and_select[{name}]"
    return train_and_select


def stitch_record(
    layout: dict[str, Any], index_close: pd.Series | None, *results: FoldResult
) -> tuple[StitchedRecord, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One account per lane over every fold's test window: ledger, metrics, folds, weights."""
    params = layout["parameters"]
    record = uwf.stitch(
        list(results),
        layout["panel"],
        PortfolioParams.parse(params["portfolio"]),
        EvaluationParams.parse(params["evaluation"]),
        _index(index_close),
        environment=layout["environment"],
    )
    return record, record.ledger, record.records, record.folds, record.weights


def _index(index_close: pd.Series | None) -> pd.Series | None:
    """The index closes, or None without an index benchmark (:func:`index_close`'s empty series)."""
    return None if index_close is None or index_close.empty else index_close


def judge_record(
    record: StitchedRecord,
    layout: dict[str, Any],
    gate_decisions: list,
    tuning_studies: list,
    *results: FoldResult,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The gate on the procedure's stitched record, deflated for earlier decisions on the window."""
    params = layout["parameters"]
    return judge(
        record,
        list(results),
        params,
        earlier_decisions=list(gate_decisions or []),
        config=config_sha256(params),
        tuning_studies=list(tuning_studies or []),
    )


def stitched_equity_figure(record: StitchedRecord) -> Figure:
    """The stitched equity of the procedure, each agent and the benchmarks, fold starts marked (the
    walk_forward stage's figure: the record has the same ledger and folds)."""
    return walk_forward_equity_figure(record)


def portfolio_figures(record: StitchedRecord) -> tuple[Figure, Figure, Figure]:
    """The procedure's weights over time (stacked area), turnover (next to equal weight's), and
    per-asset contribution."""
    run = record.runs["agents"]
    lane = next(i for i, (k, _, _) in enumerate(record.lanes) if k == "procedure")
    turnover = {"procedure": lane_run(run, [lane])}
    ew = record.runs.get("equal_weight")
    if ew is not None:
        turnover["equal_weight"] = ew
    return (
        figures.weights_figure(run, lane, title="Walk-forward procedure: weights over time"),
        figures.turnover_figure(turnover),
        figures.contribution_figure(run, lane, title="Walk-forward procedure: contribution by asset"),
    )


def deployment_policy(deployment: FoldResult) -> Any:
    """The deployment fold's champion agent (all its seeds), to store as a versioned artifact."""
    return uwf.check_deployable(deployment)


def deployment_champion(
    policy: Any, deployment: FoldResult, verdict: dict[str, Any], evaluation: EvaluationParams
) -> dict[str, Any]:
    """``portfolio.champion``: the deployment fold's champion with the stitched record's verdict."""
    return champion_document(deployment, verdict, policy, EvaluationParams.parse(evaluation))


def render_report(record: StitchedRecord, verdict: dict[str, Any], environment: EnvConfig) -> str:
    """The portfolio tear sheet (HTML): the walk-forward verdict, side-by-side metrics and stitched
    equity, then the procedure's weights over time, turnover and per-asset contribution
    (``templates/portfolio_report.html.j2``: every ticker and name escaped)."""
    env = EnvConfig.parse(environment)
    weights, turnover, contribution = portfolio_figures(record)
    tickers = [str(t) for t in verdict.get("universe") or []]
    setup = {"tickers": len(tickers), **env.universe_params()}
    context = walk_forward_context(
        verdict,
        record.records,
        record.folds,
        stitched_equity_figure(record),
        setup,
        subject=f"a universe of {len(tickers)} stocks",
    )
    figures = (("weights", weights), ("turnover", turnover), ("contribution", contribution))
    section = {
        "tickers": tickers,
        "long_only": env.long_only,
        "figures": [{"alt": alt, "png": figure_to_base64_png(fig)} for alt, fig in figures],
    }
    return render_html("portfolio_report.html.j2", **context, portfolio=section)


# --------------------------------------------------------------------------- paper trading
def register_champion(
    champion: dict[str, Any], deployment: Any, layout: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What to register in the registry (and whether to auto-promote): the request the
    single-asset deployment makes, with the universe's tickers, written to both views of the
    registry so Kedro registers first."""
    return request_registration(champion, deployment, [str(t) for t in layout["panel"].tickers])


def _check_model(model: Any, panel: Any, env: EnvConfig) -> None:
    """Refuse a policy trained on other tickers, features, window or account."""
    spec = model.bundle.spec
    want = {
        "tickers": list(panel.tickers),
        "feature_names": list(panel.feature_names),
        "window": env.window,
        "portfolio_environment": env.universe_params(),
    }
    for key, value in want.items():
        got = spec.get(key)
        if key == "portfolio_environment" and isinstance(got, dict):
            got = {**got, "device": value["device"]}
        if got != value:
            raise PortfolioInputError(
                f"{model.label}: its {key} is {got!r} but the paper account trades with {value!r}; "
                "retrain the portfolio cycle with these settings or register a matching model"
            )


def _pooled(panel: Any, first: int, stop: int) -> pd.DataFrame:
    """The raw features of rows ``first:stop``, every listed ticker's row pooled (one column per
    feature)."""
    listed = np.isfinite(panel.close[first:stop])
    return pd.DataFrame(panel.features[first:stop][listed], columns=list(panel.feature_names))


def feature_drift(panel: Any, plan: Any, drift: Any) -> dict[str, Any]:
    """PSI and KS of the paper window's features against the deployment fold's training rows (both
    pooled over the listed tickers), with the ``deployment.drift`` thresholds: the whole window at
    once, a report (the accounts' own per-bar check is :func:`drift_check`)."""
    train, paper = plan.deployment.train, plan.paper
    reference = build_reference(_pooled(panel, train.first_row, train.stop_row), n_bins=drift.n_bins)
    report = drift_report(reference, _pooled(panel, paper.first_row, paper.stop_row), drift)
    cols = ["feature", "n_live", "psi", "ks_stat", "psi_alert", "ks_alert", "status"]
    rows = report.reset_index()[cols].to_dict("records")
    return {
        "reference": f"training rows {train.start.date()} .. {train.end.date()}, listed tickers pooled",
        "window": f"paper rows {paper.start.date()} .. {paper.end.date()}",
        "alerts": [r["feature"] for r in rows if r["psi_alert"] or r["ks_alert"]],
        "features": rows,
    }


def drift_check(panel: Any, plan: Any, drift: Any) -> Any:
    """The paper accounts' per-bar drift monitor for a universe: each bar, the pooled features of
    the last ``drift.window`` feed rows (every listed ticker's row) against the deployment fold's
    training rows, pooled the same way, with thresholds calibrated on windows of the training rows
    (every 20 dates) unless ``drift.calibrate`` is null. Returns ``check(feed, row)`` -> alerts."""
    train = plan.deployment.train
    rows = _pooled(panel, train.first_row, train.stop_row)
    reference = build_reference(rows, n_bins=drift.n_bins)
    n = len(panel.tickers)
    per_feature = None
    if drift.calibrate is not None:
        per_feature = calibrate_thresholds(
            reference, rows, drift.window * n, float(drift.calibrate), drift, stride=20 * n
        )
    monitor = DriftMonitor(
        reference=reference,
        feature_fn=lambda at: _pooled(at[0], max(0, at[1] + 1 - drift.window), at[1] + 1),
        thresholds=drift,
        window=drift.window * n,
        check_every=drift.check_every,
        per_feature=per_feature,
    )
    return lambda feed, row: monitor((feed, row))


def paper_trade(
    production: Any,
    shadow: Any,
    account: Any,
    shadow_account: Any,
    layout: dict[str, Any],
    portfolio: PortfolioParams,
    deployment: Any,
) -> tuple[Any, Any, dict[str, Any]]:
    """Trade every new bar of the held-back paper window in both accounts: the production account
    with the registry's production model only, the shadow account with the newest champion whatever
    its verdict. Whole shares by default, the same costs and capital as the backtests; each bar at
    most once (a re-run with no new bar changes nothing). Each bar the drift monitor's alerts are
    recorded and, with ``deployment.drift.halt_on_drift``, halt the account. The status also reports
    the features' drift over the paper window against the deployment fold's training rows."""
    p = PortfolioParams.parse(portfolio)
    env: EnvConfig = layout["environment"]
    plan, panel = layout["plan"], layout["panel"]
    status: dict[str, Any] = {"paper_window": None, "accounts": {}}
    if plan.paper is None:
        status["reason"] = "walk_forward.paper_years is 0: no bars are held back for paper trading"
        return account, shadow_account, status
    status["paper_window"] = plan.paper.to_dict()
    drift = DeploymentParams.parse(deployment).drift
    status["drift"] = json_safe(feature_drift(panel, plan, drift))
    feed = panel.window(plan.paper.first_row, plan.paper.stop_row, env.window - 1)
    limits = RiskLimits(
        max_position_fraction=p.paper.max_weight,
        max_drawdown=p.paper.max_drawdown if p.paper.max_drawdown < 1 else None,  # 1: never breached
    )
    check = drift_check(panel, plan, drift)
    for role, model, staged in (("production", production, account), ("shadow", shadow, shadow_account)):
        if not model.available:
            status["accounts"][role] = {
                "model": None,
                "traded": 0,
                "reason": f"no {role} model in the registry",
            }
            continue
        if not model.trades(panel.tickers):
            status["accounts"][role] = {
                "model": model.label,
                "traded": 0,
                "reason": model.other_universe_message(panel.tickers),
            }
            continue
        _check_model(model, panel, env)
        decide = PolicyLanes([model.bundle.load_policy(model.seed)])
        acct = PaperAccount.universe(
            staged,
            panel.tickers,
            env,
            granularity=p.paper.granularity,
            limits=limits,
            drift_check=check,
            halt_on_drift=drift.halt_on_drift,
        )
        summary = acct.run(feed, decide, model_id=model.entry_id)
        status["accounts"][role] = {
            "model": model.label,
            "entry_id": model.entry_id,
            "traded": int(summary.bars_processed),
        }
    return account, shadow_account, status


def report_paper(account: Any, shadow_account: Any, status: dict[str, Any]) -> tuple[dict[str, Any], Figure]:
    """Status JSON and equity figure of both committed accounts (read back after their commit):
    what this run traded (``traded``) beside the account as its state and logs say (equity,
    cash, drawdown, holdings and its newest session, whichever run reports it)."""
    curves = {}
    for role, staged in (("production", account), ("shadow", shadow_account)):
        state, logs = getattr(staged, "state", None), getattr(staged, "history", None) or {}
        if state is not None and role in status["accounts"]:
            status["accounts"][role].update(
                last_bar=state.last_bar,
                equity=state.equity,
                cash=state.cash,
                drawdown=state.drawdown,
                halted=bool(state.halted),
                holdings={t: x for t, x in state.holdings().items() if x},
                bars_processed_total=state.bars_processed,
                last_session=last_session(state, logs),
            )
        marks = logs.get("equity", [])
        if marks:
            curves[f"{role} account"] = pd.Series(
                [float(m["equity"]) for m in marks],
                index=pd.DatetimeIndex([pd.Timestamp(m["bar"]) for m in marks]),
            )
    if curves:
        fig = equity_curves_figure(curves, benchmarks=[], title="Portfolio paper accounts")
    else:
        fig = Figure(figsize=(8, 3))
        fig.text(0.5, 0.5, "no paper bars traded yet", ha="center")
    return status, fig
