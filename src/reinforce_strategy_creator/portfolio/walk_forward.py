"""Walk-forward for portfolios: train -> select -> trade per fold, one stitched record, one verdict.

The same procedure as the single-asset :mod:`..walk_forward.engine`, on a universe: the fold
layout is :func:`..walk_forward.folds.plan_folds` on the panel's dates; in each fold every agent
x seed trains on the fold's training rows (the policy's feature scaler is fit there), the
checkpoints and the fold's champion are chosen on its validation window alone
(:func:`..evaluation.gate.select_champion` on :func:`..evaluation.results.split_records`), and
nothing after the validation window is read. :func:`stitch` then replays every fold's choices
over the test windows as one account per lane (the procedure, each agent's validation-best seed,
each agent x seed, each seed ensemble) next to every benchmark, with the same costs, capital and
first decision; :func:`judge` is the single-asset judge, unchanged, on that record (the gate's
reference is the run named ``buy_and_hold``: equal weight bought at the first bar and held).

A fold result and a stitched record have the attributes the single-asset judge reads, so the
gate, the deflated PSR (every earlier decision on the same window counted), PBO and DSR are the
same code.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ..artifacts import PolicyBundle
from ..candidates import ENSEMBLE_SEED, seed_label
from ..env.portfolio import PortfolioConfig, PortfolioInputError
from ..evaluation.gate import select_champion
from ..evaluation.metrics import infer_periods_per_year, json_safe
from ..evaluation.results import split_records
from ..params.evaluation import EvaluationParams
from ..params.portfolio import PortfolioParams
from ..params.walk_forward import WalkForwardParams
from ..walk_forward import engine
from ..walk_forward.folds import Fold, FoldPlan, plan_folds
from ..walk_forward.stitch import ReconciliationError
from .panel import PortfolioPanel
from .replay import PortfolioRun, replay_weights

if TYPE_CHECKING:
    from ..compute import Executor

__all__ = [
    "PortfolioFoldResult",
    "PortfolioRecord",
    "deployment_champion",
    "fold_panels",
    "judge",
    "plan",
    "run_fold",
    "run_walk_forward",
    "stitch",
]


@dataclass
class PortfolioFoldResult:
    """One fold: trained bundles (agent -> :class:`PolicyBundle`), histories, validation records,
    the champion and each agent's validation-best seed (the single-asset ``FoldResult`` fields
    the judge reads)."""

    fold: Fold
    bundles: dict[str, PolicyBundle]
    histories: dict[str, pd.DataFrame]
    validation: pd.DataFrame
    champion: dict[str, Any]
    best_seed: dict[str, int]


@dataclass
class PortfolioRecord:
    """The stitched ledger, its metrics, per-fold table and reconciliation; ``runs`` keeps the
    replays (lane order in ``lanes``) for the weights, turnover and contribution figures."""

    ledger: pd.DataFrame
    records: pd.DataFrame
    folds: pd.DataFrame
    reconciliation: dict[str, Any]
    window: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, PortfolioRun] = field(default_factory=dict)
    lanes: list[tuple[str, str, int]] = field(default_factory=list)
    weights: pd.DataFrame | None = None


# --------------------------------------------------------------------------- layout
def plan(panel: PortfolioPanel, walk_forward: WalkForwardParams | Mapping[str, Any], warmup: int) -> FoldPlan:
    """The fold layout on the panel's dates; the first ``warmup`` rows (incomplete features, and the
    observation window's history) belong to no window."""
    wf = WalkForwardParams.parse(walk_forward)
    return plan_folds(panel.dates, wf, embargo_bars=0, warmup_bars=warmup)


def fold_panels(panel: PortfolioPanel, fold: Fold, window: int) -> tuple[PortfolioPanel, PortfolioPanel]:
    """The fold's training panel (its training rows, with ``window - 1`` rows of history before
    them when the data has them) and validation panel (``window - 1`` history rows, then the
    validation window). Neither reaches past the validation window."""
    hist = window - 1
    start = max(0, fold.train.first_row - hist)
    train = panel.rows(start, fold.train.stop_row)
    validation = panel.window(fold.validation.first_row, fold.validation.stop_row, hist)
    return train, validation


# --------------------------------------------------------------------------- deciders
class PolicyDecider:
    """A trained policy (or the mean weights of several: a seed ensemble) as a replay decider."""

    def __init__(self, policies: Sequence[torch.nn.Module]):
        self.policies = list(policies)

    def __call__(self, obs: torch.Tensor, bar: int) -> torch.Tensor:
        with torch.no_grad():
            ws = [p.decide(obs, bar).to(torch.float64) for p in self.policies]
        return ws[0] if len(ws) == 1 else torch.stack(ws).mean(0)


class LaneSwitch:
    """L lanes, each with one decider per fold: lane l at panel row ``bar`` asks its decider of the
    fold whose test window holds ``offset + bar``."""

    def __init__(self, lanes: Sequence[Sequence[Callable]], starts: Sequence[int], offset: int):
        self.lanes, self.starts, self.offset = lanes, list(starts), offset

    def fold_of(self, bar: int) -> int:
        row = self.offset + bar
        k = int(np.searchsorted(self.starts, row, side="right")) - 1
        return max(0, k)

    def __call__(self, obs: torch.Tensor, bar: int) -> torch.Tensor:
        k = self.fold_of(bar)
        return torch.cat([lane[k](obs[i : i + 1], bar) for i, lane in enumerate(self.lanes)], 0)


def _policies(bundle: PolicyBundle, seed: int) -> list[torch.nn.Module]:
    if seed == ENSEMBLE_SEED:
        return [bundle.load_policy(s) for s in bundle.seeds]
    return [bundle.load_policy(seed)]


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
    finite = {s: v for s, v in scores.items() if math.isfinite(v)}
    best = max(finite, key=lambda s: (finite[s], -s)) if finite else int(seeds[0])
    spec.update(
        {
            "algorithm": algorithm,
            "agent": name,
            "seeds": [int(s) for s in seeds],
            "validation_scores": {str(s): v for s, v in scores.items()},
            "best_seed": int(best),
            "positions": "weights",
            **spec_extra,
        }
    )
    return PolicyBundle(spec=spec, state_dicts=state_dicts), pd.concat(histories, ignore_index=True)


def train_portfolio_job(payload: Mapping[str, Any], shared: Mapping[str, PortfolioPanel]) -> dict[str, Any]:
    """One job: train ``payload["seeds"]`` of one agent on ``shared["train"]``, checkpoints scored on
    ``shared["validation"]``. A pure function of its arguments; plain data out."""
    from .training import train_portfolio_members

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
            PortfolioConfig(**payload["environment"]),
            payload["seeds"],
            num_envs=payload["num_envs"],
            eval_every=payload["eval_every"],
            patience=payload["patience"],
            population=payload["population"],
            progress=payload["progress"],
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


def _payloads(params: PortfolioParams, env: PortfolioConfig, threads: int | None) -> list[dict[str, Any]]:
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
                    "environment": _env_dict(env),
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


def _env_dict(env: PortfolioConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(env)


def train_fold_agents(
    train: PortfolioPanel,
    validation: PortfolioPanel,
    params: PortfolioParams,
    executor: Executor | None = None,
    label: str = "training",
) -> tuple[dict[str, PolicyBundle], dict[str, pd.DataFrame]]:
    """Every agent x seed of ``params.training`` as jobs (on ``executor``, or in this process)."""
    env = PortfolioConfig(**params.environment.to_params())
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
        "portfolio_environment": _env_dict(env),
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


def _ledger(run: PortfolioRun, lanes: Sequence[tuple[str, str, int]], split: str) -> pd.DataFrame:
    """The lanes of one replay as long ledger rows (``portfolio.ledger.run_ledger``'s columns), each
    lane with its own kind, run and seed."""
    from .ledger import run_ledger
    from .replay import lane_run

    return pd.concat(
        [run_ledger(lane_run(run, [i]), k, name, [s], split) for i, (k, name, s) in enumerate(lanes)],
        ignore_index=True,
    )


def _history_close(panel: PortfolioPanel, first_row: int) -> pd.DataFrame:
    """The universe's closes before ``first_row`` (the optimised benchmarks' trailing window)."""
    return pd.DataFrame(panel.close[:first_row], index=panel.dates[:first_row], columns=list(panel.tickers))


def _benchmark_frames(window_panel, env, params, index_close, split, full_panel, first_row):
    """Every benchmark on ``window_panel`` (rows ``first_row`` on of ``full_panel``): the optimised
    ones fit on trailing closes, which may reach before the window but never past a decision bar."""
    from .ledger import run_ledger
    from .replay import replay_portfolio_benchmarks

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
) -> PortfolioFoldResult:
    """Train every agent x seed of ``fold`` and choose its champion on its validation window."""
    env = PortfolioConfig(**params.environment.to_params())
    train, validation = fold_panels(panel, fold, env.window)
    bundles, histories = train_fold_agents(train, validation, params, executor, label=f"{fold.name} training")
    lanes = _candidate_lanes(bundles, evaluation.ensembles)
    deciders = [PolicyDecider(_policies(bundles[a], s)) for _, a, s in lanes]
    run = replay_weights(
        validation,
        env,
        lambda obs, bar: torch.cat([d(obs[i : i + 1], bar) for i, d in enumerate(deciders)], 0),
        num_lanes=len(lanes),
    )
    first = fold.validation.first_row - (env.window - 1)
    frames = [_ledger(run, lanes, "validation")]
    # selection reads the candidates' validation metrics only; buy_and_hold is their reference
    only_bh = params.model_copy(update={"benchmarks": params.benchmarks.replace(names=("buy_and_hold",))})
    frames += _benchmark_frames(validation, env, only_bh, None, "validation", panel, first)[0]
    records = split_records(pd.concat(frames, ignore_index=True), "validation")
    candidates = records[records["kind"].isin(["agent", "ensemble"])].reset_index(drop=True)
    champion = select_champion(candidates, evaluation.rank_metric, evaluation.selection)
    best_seed = {}
    for agent in bundles:
        own = candidates[(candidates["agent"] == agent) & (candidates["kind"] == "agent")]
        pick = select_champion(own.reset_index(drop=True), evaluation.rank_metric, "best_candidate")
        best_seed[agent] = pick["seed"] if pick["seed"] is not None else bundles[agent].seeds[0]
    return PortfolioFoldResult(fold, bundles, histories, records, champion, best_seed)


# --------------------------------------------------------------------------- stitched record
def panel_fingerprint(panel: PortfolioPanel) -> str:
    """SHA-256 of the dates, tickers and closes a verdict decides on."""
    h = hashlib.sha256()
    h.update(json.dumps([list(panel.tickers), [d.isoformat() for d in panel.dates]]).encode())
    h.update(np.ascontiguousarray(np.nan_to_num(panel.close, nan=-1.0)).tobytes())
    return h.hexdigest()


def stitch(
    results: Sequence[PortfolioFoldResult],
    panel: PortfolioPanel,
    params: PortfolioParams,
    evaluation: EvaluationParams,
    index_close: pd.Series | None = None,
) -> PortfolioRecord:
    """Replay every fold's choices over the test windows as one account per lane, next to every
    benchmark on the same bars with the same costs and capital."""
    env = PortfolioConfig(**params.environment.to_params())
    first = results[0].fold.test.first_row
    stop = results[-1].fold.test.stop_row
    stretch = panel.window(first, stop, env.window - 1)
    offset = first - (env.window - 1)
    starts = [r.fold.test.first_row for r in results]
    lanes = engine.stitched_lanes(results, evaluation.ensembles)  # type: ignore[arg-type]
    cache: dict[tuple[int, int], PolicyDecider] = {}

    def decider(bundle, seed):
        key = (id(bundle), seed)
        if key not in cache:
            cache[key] = PolicyDecider(_policies(bundle, seed))
        return cache[key]

    switch = LaneSwitch([[decider(b, s) for b, s, _ in per_fold] for *_, per_fold in lanes], starts, offset)
    run = replay_weights(stretch, env, switch, num_lanes=len(lanes))
    meta = [(k, r, s) for k, r, s, _ in lanes]
    frames = [_ledger(run, meta, "walk_forward")]
    bench, bench_runs = _benchmark_frames(stretch, env, params, index_close, "walk_forward", panel, offset)
    ledger = pd.concat(frames + bench, ignore_index=True)
    records = split_records(ledger, "walk_forward")
    recon = _reconcile(run, meta)
    folds = _per_fold(ledger, results, stretch)
    window = {
        "start": stretch.dates[env.window - 1].date().isoformat(),
        "end": stretch.dates[-1].date().isoformat(),
    }
    traded = stretch.rows(env.window - 1, stretch.n_bars)
    weights = _weights_long(run, meta)
    return PortfolioRecord(
        ledger,
        records,
        folds,
        recon,
        window,
        {"data_fingerprint": panel_fingerprint(traded)},
        runs={"agents": run, **bench_runs},
        lanes=meta,
        weights=weights,
    )


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


def _per_fold(ledger: pd.DataFrame, results: Sequence[PortfolioFoldResult], stretch) -> pd.DataFrame:
    ppy = infer_periods_per_year(stretch.dates)
    rows = []
    lanes = {}
    for kind, run in (("procedure", "procedure"), ("benchmark", "buy_and_hold")):
        lane = ledger[(ledger["kind"] == kind) & (ledger["run"] == run) & (ledger["seed"] == 0)]
        if not lane.empty:
            lanes[run] = lane.set_index("date")["equity"]
    for r in results:
        f = r.fold
        row = {
            "fold": f.name,
            "label": f.label,
            "test_start": f.test.start.date().isoformat(),
            "test_end": f.test.end.date().isoformat(),
            "champion": None
            if r.champion["agent"] is None
            else f"{r.champion['agent']} {seed_label(r.champion['seed'])}",
            "validation_sharpe": (r.champion.get("validation") or {}).get("sharpe"),
        }
        for run, eq in lanes.items():
            # the fold's decisions: from its first test bar's close to the close after its last decision
            seg = eq[(eq.index >= f.test.start) & (eq.index <= f.test.end)]
            prev = eq[eq.index < f.test.start]
            if not prev.empty:
                seg = pd.concat([prev.iloc[-1:], seg])
            sharpe, total = engine.fold_test_figures(seg, ppy)
            row[f"{run}_test_sharpe"], row[f"{run}_test_return"] = sharpe, total
        rows.append(row)
    return pd.DataFrame(rows)


def judge(
    record: PortfolioRecord,
    results: Sequence[PortfolioFoldResult],
    parameters: Mapping[str, Any],
    *,
    earlier_decisions: Sequence[Mapping[str, Any]] = (),
    config: str = "",
    tuning_studies: Sequence[Mapping[str, Any]] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The single-asset judge on the portfolio record: gate, deflated PSR, PBO, DSR."""
    verdict, decision = engine.judge(
        record,  # type: ignore[arg-type]
        results,  # type: ignore[arg-type]
        parameters,
        earlier_decisions=earlier_decisions,
        config=config,
        tuning_studies=tuning_studies,
    )
    verdict["decided_on"]["what"] = (
        "the portfolio procedure's stitched record: each fold's champion, chosen on its validation "
        "window, trading its test window, one account across the folds; the gate's buy_and_hold is "
        "equal weight bought at the first bar and held"
    )
    verdict["universe"] = list(results[0].bundles[next(iter(results[0].bundles))].spec.get("tickers", []))
    return json_safe(verdict), decision


def deployment_champion(
    deployment: PortfolioFoldResult, verdict: Mapping[str, Any], policy: Any, evaluation: EvaluationParams
) -> dict[str, Any]:
    """The champion document of the deployment fold (the single-asset contract)."""
    return engine.deployment_champion(deployment, verdict, policy, evaluation)  # type: ignore[arg-type]


def check_deployable(deployment: PortfolioFoldResult) -> PolicyBundle:
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
    warmup: int,
    index_close: pd.Series | None = None,
    executor: Executor | None = None,
    earlier_decisions: Sequence[Mapping[str, Any]] = (),
) -> tuple[PortfolioRecord, list[PortfolioFoldResult], dict[str, Any]]:
    """The whole procedure without Kedro (tests, benchmarks, notebooks): plan, every fold, the
    stitched record and the verdict on it. The deployment fold is not trained."""
    p = PortfolioParams.parse(portfolio)
    ev = EvaluationParams.parse(evaluation)
    wf = WalkForwardParams.parse(walk_forward)
    layout = plan(panel, wf, warmup)
    results = [run_fold(f, panel, p, ev, executor, index_close) for f in layout.folds]
    record = stitch(results, panel, p, ev, index_close)
    params = {"portfolio": p.to_params(), "evaluation": ev.to_params(), "walk_forward": wf.to_params()}
    verdict, _ = judge(record, results, params, earlier_decisions=earlier_decisions)
    return record, results, verdict
