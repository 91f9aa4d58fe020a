"""The walk-forward engine on a universe (N >= 1 assets on one panel), through the portfolio kernel.

The procedure, the records and the judge are :mod:`.engine`'s: the fold layout is
:func:`.folds.plan_folds` on the panel's dates; in each fold every agent x seed trains on the
fold's training rows (the policy's feature scaler is fit there), the fold's champion and each
agent's validation-best seed are chosen on its validation window alone (:func:`.engine.choose`),
and nothing after the validation window is read. :func:`stitch` replays every fold's choices over
the test windows as one account per lane (:func:`.engine.stitched_lanes`: the procedure, each
agent's validation-best seed, each agent x seed and seed ensemble), switching fold at each test
window (:class:`.stitch.FoldSwitch`), next to every benchmark (the strategies of
``evaluation.benchmarks``, ``evaluation.replay.replay_portfolio_benchmarks``) with the same costs,
capital and first decision, into an :class:`.engine.StitchedRecord` with its universe;
:func:`.engine.judge` gates it (the gate's reference is ``buy_and_hold``: equal weight bought at
the first bar and held), and :func:`.engine.deployment_champion` writes the champion document.

What differs from one asset is the kernel the lanes trade through: the panel's replay
(``evaluation.replay.replay_weights``) and the portfolio agents' trainer
(``training.train_portfolio_members``: the agents' trainers on ``PortfolioCore``
members, through ``training.train_members``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ..agents.ensemble import PolicyLanes, ensemble_rule
from ..artifacts import PolicyBundle
from ..candidates import ENSEMBLE_SEED, seed_label
from ..env.config import EnvConfig
from ..env.portfolio import PortfolioInputError
from ..evaluation.ledger import run_ledger
from ..evaluation.metrics import infer_periods_per_year
from ..evaluation.replay import PortfolioRun, lane_run, replay_portfolio_benchmarks, replay_weights
from ..evaluation.results import split_records
from ..panel import PortfolioPanel
from ..params.evaluation import EvaluationParams
from ..params.portfolio import PortfolioParams
from ..params.walk_forward import WalkForwardParams
from ..training import seed_selection, train_portfolio_members
from .cache import FoldCache, fold_key
from .engine import (
    FoldResult,
    StitchedRecord,
    anchored,
    choose,
    fold_table,
    judge,
    reference_lanes,
    stitched_lanes,
)
from .folds import Fold, plan_folds
from .stitch import FoldSwitch, ReconciliationError

if TYPE_CHECKING:
    from ..compute import Executor

__all__ = [
    "check_deployable",
    "fold_panels",
    "fold_parameters",
    "run_fold",
    "run_walk_forward",
    "stitch",
    "train_fold_agents",
]


def fold_panels(panel: PortfolioPanel, fold: Fold, window: int) -> tuple[PortfolioPanel, PortfolioPanel]:
    """The fold's training panel (its training rows, with ``window - 1`` rows of history before
    them when the data has them) and validation panel (``window - 1`` history rows, then the
    validation window). Neither reaches past the validation window."""
    hist = window - 1
    start = max(0, fold.train.first_row - hist)
    train = panel.rows(start, fold.train.stop_row)
    validation = panel.window(fold.validation.first_row, fold.validation.stop_row, hist)
    return train, validation


# --------------------------------------------------------------------------- training
def _agent_bundle(name, algorithm, results, seeds, spec_extra) -> tuple[PolicyBundle, pd.DataFrame]:
    state_dicts, scores, histories, spec = {}, {}, [], {}
    for seed, res in zip(seeds, results):
        state_dicts[int(seed)] = {k: v.detach().cpu().contiguous() for k, v in res["state_dict"].items()}
        scores[int(seed)] = float(res["score"])
        h = res["history"].copy()
        h.insert(0, "seed", np.int64(seed))
        histories.append(h)
        spec = dict(res["policy_spec"])
    spec.update(
        {
            "algorithm": algorithm,
            "agent": name,
            **seed_selection([int(s) for s in seeds], scores),
            "positions": "weights",
            "ensemble_rule": ensemble_rule(spec["kind"]),
            **spec_extra,
        }
    )
    return PolicyBundle(spec=spec, state_dicts=state_dicts), pd.concat(histories, ignore_index=True)


def train_portfolio_job(payload: Mapping[str, Any], shared: Mapping[str, PortfolioPanel]) -> dict[str, Any]:
    """One job: train ``payload["seeds"]`` of one agent on ``shared["train"]``, checkpoints scored on
    ``shared["validation"]``. A pure function of its arguments; plain data out."""
    threads = payload.get("threads")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        results = train_portfolio_members(
            payload["algorithm"],
            payload["config"],
            shared["train"],
            shared["validation"],
            payload["environment"],
            payload["seeds"],
            num_envs=payload["num_envs"],
            eval_every=payload["eval_every"],
            patience=payload["patience"],
            population=payload["population"],
            progress=payload["progress"],
            agent=payload["agent"],
        )
    finally:
        torch.set_num_threads(before)
    return {
        "agent": payload["agent"],
        "steps": int(sum(int(r.steps) for r in results)),  # env steps, for the progress line
        "seeds": [
            {
                "state_dict": {k: v.detach().cpu() for k, v in r.policy.state_dict().items()},
                "policy_spec": dict(r.policy.spec),
                "history": r.history,
                "score": float(r.best_score),
                "steps": int(r.steps),
            }
            for r in results
        ],
    }


def _payloads(params: PortfolioParams, env: EnvConfig, threads: int | None) -> list[dict[str, Any]]:
    tr = params.training
    out = []
    for name, raw in tr.agents.items():
        block = dict(raw)
        algorithm = block.pop("algorithm")
        seed_groups = [list(tr.seeds)] if tr.population else [[s] for s in tr.seeds]
        for seeds in seed_groups:
            out.append(
                {
                    "agent": name,
                    "algorithm": algorithm,
                    "config": block,
                    "environment": env,  # the typed block: pickles through the executor
                    "seeds": seeds,
                    "num_envs": tr.num_envs,
                    "eval_every": tr.eval_every,
                    "patience": tr.patience,
                    "population": tr.population,
                    "progress": tr.progress,
                    "threads": tr.num_threads or threads,
                }
            )
    return out


def train_fold_agents(
    train: PortfolioPanel,
    validation: PortfolioPanel,
    params: PortfolioParams,
    executor: Executor | None = None,
    label: str = "training",
    *,
    environment: EnvConfig,
) -> tuple[dict[str, PolicyBundle], dict[str, pd.DataFrame]]:
    """Every agent x seed of ``params.training`` as jobs (on ``executor``, or in this process), each
    trading the accounts of ``environment``."""
    env = environment
    payloads = _payloads(params, env, getattr(executor, "threads_per_worker", None))
    shared = {"train": train, "validation": validation}
    if executor is None:
        results = [train_portfolio_job(p, shared) for p in payloads]
    else:
        results = executor.map(train_portfolio_job, payloads, shared, label=label)
    spec_extra = {
        "tickers": list(train.tickers),
        "feature_names": list(train.feature_names),
        "window": env.window,
        "portfolio_environment": env.universe_params(),
        "data": {
            "train_start": train.dates[0].date().isoformat(),
            "train_end": train.dates[-1].date().isoformat(),
            "validation_start": validation.dates[env.window - 1].date().isoformat(),
            "validation_end": validation.dates[-1].date().isoformat(),
        },
    }
    bundles, histories = {}, {}
    for name, block in params.training.agents.items():
        per_seed = [s for r, p in zip(results, payloads) if p["agent"] == name for s in r["seeds"]]
        bundles[name], histories[name] = _agent_bundle(
            name, block["algorithm"], per_seed, list(params.training.seeds), spec_extra
        )
    return bundles, histories


# --------------------------------------------------------------------------- one fold
def _candidate_lanes(bundles: Mapping[str, PolicyBundle], ensembles: bool) -> list[tuple[str, str, int]]:
    lanes = []
    for name in sorted(bundles):
        seeds = bundles[name].seeds
        lanes += [("agent", name, s) for s in seeds]
        if ensembles and len(seeds) > 1:
            lanes.append(("ensemble", name, ENSEMBLE_SEED))
    return lanes


def lane_ledger(run: PortfolioRun, lanes: Sequence[tuple[str, str, int]], split: str) -> pd.DataFrame:
    """The lanes of one replay as long ledger rows (``evaluation.ledger.run_ledger``'s columns), each
    lane with its own kind, run and seed."""
    return pd.concat(
        [run_ledger(lane_run(run, [i]), k, name, [s], split) for i, (k, name, s) in enumerate(lanes)],
        ignore_index=True,
    )


def _history_close(panel: PortfolioPanel, first_row: int) -> pd.DataFrame:
    """The universe's closes before ``first_row`` (the benchmarks' trailing window)."""
    return pd.DataFrame(panel.close[:first_row], index=panel.dates[:first_row], columns=list(panel.tickers))


def _benchmark_frames(window_panel, env, params, index_close, split, full_panel, first_row):
    """Every benchmark on ``window_panel`` (rows ``first_row`` on of ``full_panel``): the strategies
    read trailing closes, which may reach before the window but never past a decision bar."""
    index = None
    if index_close is not None:
        index = index_close.iloc[first_row : first_row + window_panel.n_bars]
    runs = replay_portfolio_benchmarks(
        window_panel,
        env,
        params.benchmarks,
        index,
        history_close=_history_close(full_panel, first_row),
    )
    frames = [run_ledger(run, kind, name, list(seeds), split) for kind, name, seeds, run in runs]
    return frames, {name: run for _, name, _, run in runs}


def run_fold(
    fold: Fold,
    panel: PortfolioPanel,
    params: PortfolioParams,
    evaluation: EvaluationParams,
    executor: Executor | None = None,
    index_close: pd.Series | None = None,
    cache: FoldCache | None = None,
    *,
    environment: EnvConfig,
) -> FoldResult:
    """Train every agent x seed of ``fold`` and choose its champion on its validation window, every
    account trading under ``environment``. With
    ``cache``, a fold stored under the same :func:`.cache.fold_key` (same panel up to its
    validation end, windows, :func:`fold_parameters`, agents and code) is loaded instead and trains
    nothing; a trained fold is stored there."""
    key = None
    if cache is not None:
        key = fold_key(
            fold, panel, fold_parameters(params, evaluation, environment), sorted(params.training.agents)
        )
        stored = cache.load(key)
        if stored is not None:
            return FoldResult.from_store(fold, None, stored)
    env = environment
    train, validation = fold_panels(panel, fold, env.window)
    bundles, histories = train_fold_agents(
        train, validation, params, executor, label=f"{fold.name} training", environment=env
    )
    first = fold.validation.first_row - (env.window - 1)
    # selection reads the candidates' validation metrics only; buy_and_hold is their reference
    only_bh = params.model_copy(update={"benchmarks": params.benchmarks.replace(names=("buy_and_hold",))})

    def validate(bundles: Mapping[str, PolicyBundle]) -> pd.DataFrame:
        lanes = _candidate_lanes(bundles, evaluation.ensembles)
        named = [(bundles[a], s, f"{fold.name}/{a}/{seed_label(s)}") for _, a, s in lanes]
        run = replay_weights(validation, env, PolicyLanes.from_bundles(named), num_lanes=len(lanes))
        frames = [lane_ledger(run, lanes, "validation")]
        frames += _benchmark_frames(validation, env, only_bh, None, "validation", panel, first)[0]
        return split_records(pd.concat(frames, ignore_index=True), "validation")

    bundles, records = anchored(validate, bundles, params.training.learners())
    champion, best_seed = choose(records, bundles, evaluation)
    result = FoldResult(fold, None, bundles, histories, records, champion, best_seed)
    if cache is not None:
        cache.save(key, result)
    return result


def fold_parameters(
    params: PortfolioParams, evaluation: EvaluationParams, environment: EnvConfig
) -> dict[str, Any]:
    """The parameters a universe fold's training and selection read (its fold store key's): the
    account, the training settings and agents, and the evaluation. The features enter through the
    panel; the benchmarks besides ``buy_and_hold`` (which reads the account only) are not read."""
    return {
        "environment": environment.to_params(),
        "training": params.training.to_params(),
        "evaluation": evaluation.to_params(),
    }


# --------------------------------------------------------------------------- stitched record
def panel_fingerprint(panel: PortfolioPanel) -> str:
    """SHA-256 of the dates, tickers and closes a verdict decides on."""
    h = hashlib.sha256()
    h.update(json.dumps([list(panel.tickers), [d.isoformat() for d in panel.dates]]).encode())
    h.update(np.ascontiguousarray(np.nan_to_num(panel.close, nan=-1.0)).tobytes())
    return h.hexdigest()


def stitch(
    results: Sequence[FoldResult],
    panel: PortfolioPanel,
    params: PortfolioParams,
    evaluation: EvaluationParams,
    index_close: pd.Series | None = None,
    *,
    environment: EnvConfig,
) -> StitchedRecord:
    """Replay every fold's choices over the test windows as one account per lane, next to every
    benchmark on the same bars with the same costs and capital (``environment``)."""
    env = environment
    first = results[0].fold.test.first_row
    stop = results[-1].fold.test.stop_row
    stretch = panel.window(first, stop, env.window - 1)
    offset = first - (env.window - 1)
    lanes = stitched_lanes(results, evaluation.ensembles)
    switch = FoldSwitch.of_lanes(
        [per_fold for *_, per_fold in lanes], [r.fold.test.first_row - offset for r in results]
    )
    run = replay_weights(stretch, env, switch, num_lanes=len(lanes))
    meta = [(k, r, s) for k, r, s, _ in lanes]
    frames = [lane_ledger(run, meta, "walk_forward")]
    bench, bench_runs = _benchmark_frames(stretch, env, params, index_close, "walk_forward", panel, offset)
    ledger = pd.concat(frames + bench, ignore_index=True)
    records = split_records(ledger, "walk_forward")
    recon = _reconcile(run, meta)
    pieces = {
        run_name: {r.fold.name: _piece(lane.set_index("date")["equity"], r.fold) for r in results}
        for run_name, lane in reference_lanes(ledger).items()
    }
    folds = fold_table(results, pieces, infer_periods_per_year(stretch.dates))
    window = {
        "start": stretch.dates[env.window - 1].date().isoformat(),
        "end": stretch.dates[-1].date().isoformat(),
    }
    traded = stretch.rows(env.window - 1, stretch.n_bars)
    return StitchedRecord(
        ledger,
        records,
        folds,
        recon,
        window,
        {"data_fingerprint": panel_fingerprint(traded), "universe": list(panel.tickers)},
        runs={"agents": run, **bench_runs},
        lanes=meta,
        weights=_weights_long(run, meta),
    )


def _piece(equity: pd.Series, fold: Fold) -> pd.Series:
    """The fold's decisions: from the close before its first test bar to its last test bar."""
    seg = equity[(equity.index >= fold.test.start) & (equity.index <= fold.test.end)]
    prev = equity[equity.index < fold.test.start]
    return pd.concat([prev.iloc[-1:], seg]) if not prev.empty else seg


def _weights_long(run: PortfolioRun, meta) -> pd.DataFrame:
    """Procedure and agent_selected lanes' weights per bar and ticker (long), with contributions."""
    rows = []
    for i, (kind, name, seed) in enumerate(meta):
        if kind not in ("procedure", "agent_selected"):
            continue
        w = run.weights_frame(i)
        contrib = run.contributions(i).drop(columns="costs")
        long = w.drop(columns="cash").stack().rename("weight").reset_index()
        long.columns = ["date", "ticker", "weight"]
        c = contrib.stack().rename("contribution").reset_index()
        c.columns = ["date", "ticker", "contribution"]
        long = long.merge(c, on=["date", "ticker"], how="left").fillna({"contribution": 0.0})
        long.insert(0, "seed", seed)
        long.insert(0, "run", name)
        long.insert(0, "kind", kind)
        rows.append(long)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _reconcile(run: PortfolioRun, meta) -> dict[str, Any]:
    """Cash + sum(shares x close) = equity on every bar of every lane, and the per-bar equity changes
    = the per-asset contributions minus costs; the largest gaps in account currency."""
    close = np.nan_to_num(run.close, nan=0.0)
    book = run.cash + (run.shares * close[None]).sum(2)
    gap_book = float(np.abs(book - run.equity).max())
    gap_pnl = 0.0
    for i in range(run.n_lanes):
        c = run.contributions(i)
        gap_pnl = max(gap_pnl, float(np.abs(c.sum(axis=1).to_numpy() - np.diff(run.equity[i])).max()))
    ok = gap_book < 0.005 and gap_pnl < 0.005
    if not ok:
        raise ReconciliationError(
            f"the stitched portfolio ledger does not reconcile: book gap {gap_book:.6f}, "
            f"P&L gap {gap_pnl:.6f} (account currency); this is a bug, please report it"
        )
    return {"lanes": len(meta), "max_book_gap": gap_book, "max_pnl_gap": gap_pnl, "reconciled": ok}


def check_deployable(deployment: FoldResult) -> PolicyBundle:
    """The deployment fold's champion bundle, or an error when the fold has no champion."""
    agent = deployment.champion["agent"]
    if agent is None:
        raise PortfolioInputError(
            f"portfolio deployment fold: no champion ({deployment.champion.get('reason')}); nothing to deploy"
        )
    return deployment.bundles[agent]


def run_walk_forward(
    panel: PortfolioPanel,
    portfolio: PortfolioParams | Mapping[str, Any],
    evaluation: EvaluationParams | Mapping[str, Any],
    walk_forward: WalkForwardParams | Mapping[str, Any],
    *,
    environment: EnvConfig | Mapping[str, Any],
    warmup: int,
    index_close: pd.Series | None = None,
    executor: Executor | None = None,
    earlier_decisions: Sequence[Mapping[str, Any]] = (),
    cache: FoldCache | None = None,
) -> tuple[StitchedRecord, list[FoldResult], dict[str, Any]]:
    """The whole procedure without Kedro (tests, benchmarks, notebooks): plan, every fold (from
    the fold store ``cache`` when unchanged), the stitched record and the verdict on it. The
    deployment fold is not trained."""
    p = PortfolioParams.parse(portfolio)
    ev = EvaluationParams.parse(evaluation)
    wf = WalkForwardParams.parse(walk_forward)
    env = EnvConfig.parse(environment)
    layout = plan_folds(panel.dates, wf, embargo_bars=0, warmup_bars=warmup)
    results = [run_fold(f, panel, p, ev, executor, index_close, cache, environment=env) for f in layout.folds]
    record = stitch(results, panel, p, ev, index_close, environment=env)
    params = {
        "environment": env.to_params(),
        "portfolio": p.to_params(),
        "evaluation": ev.to_params(),
        "walk_forward": wf.to_params(),
    }
    verdict, _ = judge(record, results, params, earlier_decisions=earlier_decisions)
    return record, results, verdict
