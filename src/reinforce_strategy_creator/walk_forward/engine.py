"""Walk-forward: train → select → trade per fold, one stitched record, one verdict on it.

:func:`train_folds` and :func:`select_fold` make the honest folds: each fold's scaler is fit on
its training rows (:mod:`.tables`), every agent × seed trains on them with checkpoints scored on
the fold's validation window (``training.train_on_tables``: the folds train together, folds ×
seeds as one population per agent, each fold's weights bit for bit those it gets alone), and each
fold's champion is chosen on its validation window alone (``evaluation.gate.select_champion``,
the ``evaluation.selection`` rule). Nothing in a fold reads a bar after its validation window.
:func:`run_folds` / :func:`run_fold` do both.

:func:`stitch` then replays every fold's choices over the test windows as one account
(:mod:`.stitch`): the procedure (each fold's champion), each agent (its validation-best seed per
fold), each agent × seed and seed ensemble (the candidates PBO is computed over), and every
benchmark, all with the same costs, capital and first decision. :func:`judge` gates the
procedure's stitched record (the ``evaluation.gate`` rules, the PSR deflated for earlier
decisions on the same window), and reports PBO over the agent × seed candidates and the DSR of
the procedure over every stitched trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..candidates import ENSEMBLE_SEED, seed_label
from ..env import EnvConfig, replay
from ..errors import InputError
from ..evaluation.backtests import backtest_split, check_run_setups, replay_benchmarks
from ..evaluation.gate import evaluate_gate, select_champion
from ..evaluation.metrics import equity_returns, infer_periods_per_year, json_safe, performance_metrics
from ..evaluation.pbo import probability_of_backtest_overfitting
from ..evaluation.results import split_records
from ..evaluation.stats import record_dsr, ruin_aware_scores
from ..evaluation.strategies import Prices
from ..evaluation.verdict import deflated_psr, finite_or, tuning_looks, window_fingerprint, window_reuse
from ..features import compute_features, max_lookback
from ..params.base import ParameterError
from ..params.evaluation import EvaluationParams
from ..params.features import FeatureParams
from ..params.training import TrainingParams
from ..params.walk_forward import WalkForwardParams
from ..training import TrainingTables, train_on_tables
from .cache import KEY_BLOCKS, FoldCache, fold_key, key_parameters
from .folds import Fold, FoldPlan, plan_folds
from .stitch import FoldSwitch, fold_segments, reconcile_segments, stitched_market
from .tables import FoldTables, fold_tables

if TYPE_CHECKING:
    from ..compute import Executor

__all__ = [
    "CycleParameters",
    "FoldResult",
    "StitchedRecord",
    "TrainedFold",
    "WalkForwardError",
    "deployment_champion",
    "fold_test_figures",
    "judge",
    "plan",
    "run_fold",
    "run_folds",
    "select_fold",
    "stitch",
    "train_folds",
    "training_histories",
]

#: the stitched ledger's lanes besides the benchmarks: kind → what one lane is
LANE_KINDS = {
    "procedure": "each fold's champion on its test window",
    "agent_selected": "the agent's validation-best seed of each fold",
    "agent": "the agent's seed s in every fold (a candidate for PBO)",
    "ensemble": "the agent's seed ensemble in every fold",
}


class WalkForwardError(InputError):
    """A walk-forward run cannot go on (e.g. the deployment fold produced no champion)."""


@dataclass
class FoldResult:
    """One fold: its tables (single asset; ``None`` for a universe, whose panel is cut per fold),
    trained bundles, training histories, validation records and choices."""

    fold: Fold
    tables: FoldTables | None
    bundles: dict[str, Any]
    histories: dict[str, pd.DataFrame]
    validation: pd.DataFrame
    champion: dict[str, Any]
    best_seed: dict[str, int]
    from_cache: bool = False

    @classmethod
    def from_store(cls, fold: Fold, tables: FoldTables | None, stored: Mapping[str, Any]) -> FoldResult:
        """The fold as :meth:`.cache.FoldCache.load` gave it back (its policies checked against
        their recorded digests)."""
        parts = ("bundles", "histories", "validation", "champion", "best_seed")
        return cls(fold, tables, *(stored[k] for k in parts), from_cache=True)


@dataclass
class StitchedRecord:
    """The stitched ledger and its metrics, with the per-fold pieces reconciled. A universe's
    record also keeps its replays (``runs``, lane order in ``lanes``) and the procedure's and
    agents' weights per bar and ticker (``weights``) for the weights, turnover and contribution
    figures; ``extra["universe"]`` names its tickers."""

    ledger: pd.DataFrame
    records: pd.DataFrame
    folds: pd.DataFrame
    reconciliation: dict[str, Any]
    window: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, Any] = field(default_factory=dict)
    lanes: list[tuple[str, str, int]] = field(default_factory=list)
    weights: pd.DataFrame | None = None


@dataclass(frozen=True)
class CycleParameters:
    """The blocks a single-asset walk-forward reads, each validated once into its typed model and
    passed down as is; :meth:`to_params` is their plain form, what fold keys and the verdict's
    configuration hash are computed on."""

    feature_engineering: FeatureParams
    environment: EnvConfig
    training: TrainingParams
    evaluation: EvaluationParams
    walk_forward: WalkForwardParams

    def to_params(self) -> dict[str, Any]:
        return {name: getattr(self, name).to_params() for name in self.__dataclass_fields__}


def _blocks(parameters: CycleParameters | Mapping[str, Any], *names: str) -> tuple:
    """The typed blocks ``names`` of ``parameters``: as they are when it is a
    :class:`CycleParameters`, else each validated from the mapping (only the blocks asked for)."""
    if isinstance(parameters, CycleParameters):
        return tuple(getattr(parameters, name) for name in names)
    models = {
        "feature_engineering": FeatureParams,
        "environment": EnvConfig,
        "training": TrainingParams,
        "evaluation": EvaluationParams,
        "walk_forward": WalkForwardParams,
    }
    return tuple(models[name].parse(parameters.get(name)) for name in names)


def plan(
    prices: pd.DataFrame, parameters: CycleParameters | Mapping[str, Any]
) -> tuple[pd.DataFrame, FoldPlan]:
    """The unscaled features over the whole history and the fold layout on them (the first
    ``max_lookback`` rows, whose features are incomplete, are warm-up)."""
    fe, wf = _blocks(parameters, "feature_engineering", "walk_forward")
    if wf.warm_start:
        raise ParameterError(
            "walk_forward.warm_start: true is not supported yet; every fold trains from scratch. "
            "Set it to false."
        )
    spec = fe.features.to_params()
    features = compute_features(prices, spec)
    return features, plan_folds(prices.index, wf, embargo_bars=0, warmup_bars=max_lookback(spec))


@dataclass
class TrainedFold:
    """One fold after training, before selection: its tables and trained bundles and histories, its
    fold store key (None without a store), or the whole result when it was loaded from the store."""

    fold: Fold
    tables: FoldTables
    bundles: dict[str, Any] = field(default_factory=dict)
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    key: str | None = None
    stored: FoldResult | None = None


def train_folds(
    folds: Sequence[Fold],
    features: pd.DataFrame,
    prices: pd.DataFrame,
    parameters: CycleParameters | Mapping[str, Any],
    agents: Sequence[str] | None = None,
    cache: FoldCache | None = None,
    executor: Executor | None = None,
) -> dict[str, TrainedFold]:
    """Train every agent x seed of every fold in ``folds`` on that fold's training window, with
    checkpoints scored on its validation window; ``{fold name: TrainedFold}``.

    The folds train together (``training.train_on_tables``): an agent whose seeds train as one
    population trains folds x seeds as ONE population (one job on ``executor``, or here without
    one), else one job per fold and seed. A fold's weights are bit for bit those it gets trained
    alone (docs/populations.md). With ``cache``, a fold stored under the same
    :func:`~.cache.fold_key` (same data up to its validation end, windows, parameters, agents and
    code) is loaded instead and trains nothing."""
    typed = dict(zip(KEY_BLOCKS, _blocks(parameters, *KEY_BLOCKS)))
    env, fe, training = typed["environment"], typed["feature_engineering"], typed["training"]
    agents = list(agents or sorted(training.agents))
    out: dict[str, TrainedFold] = {}
    blocks = key_parameters({name: block.to_params() for name, block in typed.items()}, agents)
    for fold in folds:
        tables = fold_tables(features, prices, fold, env.window, fe.scaler)
        key = fold_key(fold, prices, blocks, agents) if cache is not None else None
        stored = cache.load(key) if cache is not None else None
        if stored is not None and stored["scaler"] != tables.scaler:
            raise RuntimeError(
                f"{fold.name}: stored fold {key} was fit with another scaler; delete {cache.path(key)}"
            )
        out[fold.name] = TrainedFold(
            fold,
            tables,
            key=key,
            stored=None if stored is None else FoldResult.from_store(fold, tables, stored),
        )
    todo = {name: t.tables for name, t in out.items() if t.stored is None}
    if todo:
        trained = train_on_tables(
            {
                name: TrainingTables(tables.train, tables.validation, tables.scaler, tables.history_rows)
                for name, tables in todo.items()
            },
            env,
            [training.plan(agent) for agent in agents],
            executor,
            feature_spec=fe.features.to_params(),
            label=f"{next(iter(todo))} training" if len(todo) == 1 else f"{len(todo)} folds training",
        )
        for name, by_agent in trained.items():
            for agent in agents:
                out[name].bundles[agent], out[name].histories[agent] = by_agent[agent]
    return out


def select_fold(
    trained: TrainedFold,
    prices: pd.DataFrame,
    parameters: CycleParameters | Mapping[str, Any],
    cache: FoldCache | None = None,
) -> FoldResult:
    """The fold's champion chosen on its validation window alone (``evaluation.selection``), and
    each agent's validation-best seed; the fold is stored under its key with ``cache``. A fold
    loaded from the store is returned as it was stored."""
    if trained.stored is not None:
        return trained.stored
    env, evaluation = _blocks(parameters, "environment", "evaluation")
    fold, tables, bundles = trained.fold, trained.tables, trained.bundles
    training = _blocks(parameters, "training")[0]

    def validate(bundles: Mapping[str, Any]) -> pd.DataFrame:
        ledger = backtest_split(
            tables.validation,
            env,
            evaluation,
            bundles,
            "validation",
            history=prices.iloc[: fold.validation.stop_row],
        )
        return split_records(ledger, "validation")

    bundles, records = anchored(validate, bundles, training.learners())
    champion, best_seed = choose(records, bundles, evaluation)
    result = FoldResult(fold, tables, bundles, trained.histories, records, champion, best_seed)
    if cache is not None and trained.key is not None:
        cache.save(trained.key, result)
    return result


def held_to_benchmark(records: pd.DataFrame, learners: Mapping[str, Any]) -> list[str]:
    """The agents whose seed ensemble did not beat the benchmark on validation by their margin.

    An agent started at the benchmark (``start_at_benchmark``) keeps each trained seed only if it
    beat the untrained, benchmark-holding policy's validation Sharpe by ``benchmark_margin``; the
    same margin applies to the seeds voting together: the agent's seed ensemble (``kind ==
    "ensemble"``) must beat the ``buy_and_hold`` record (at N >= 2 equal weight bought and held)
    by it, or a non-finite Sharpe counts as not beating it. Agents without an ensemble record
    (one seed, ``evaluation.ensembles: false``) are judged by the seed margin alone."""
    bench = records[(records["kind"] == "benchmark") & (records["agent"] == "buy_and_hold")]
    if bench.empty:
        return []
    reference = float(bench["sharpe"].iloc[0])
    held = []
    for agent, cfg in learners.items():
        if not getattr(cfg, "start_at_benchmark", False):
            continue
        own = records[(records["kind"] == "ensemble") & (records["agent"] == agent)]
        if own.empty:
            continue
        sharpe = float(own["sharpe"].iloc[0])
        if not (math.isfinite(sharpe) and sharpe - reference >= cfg.benchmark_margin):
            held.append(agent)
    return held


def anchored(
    validate: Callable[[Mapping[str, Any]], pd.DataFrame],
    bundles: Mapping[str, Any],
    learners: Mapping[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """A fold's bundles and validation records after :func:`held_to_benchmark`: every held agent's
    seeds are set back to their benchmark start (``PolicyBundle.at_start``), so selection, the
    stitched lanes and the deployed champion all see the agent holding the benchmark.
    ``validate(bundles)`` replays the validation window; it is replayed again only when a reset
    changed a weight (an agent whose seeds all kept their start already is its start)."""
    records = validate(bundles)
    held = {a: bundles[a].at_start() for a in held_to_benchmark(records, learners) if a in bundles}
    changed = any(not bundles[a].same_weights(b) for a, b in held.items())
    bundles = {**bundles, **held}
    return bundles, (validate(bundles) if changed else records)


def choose(
    records: pd.DataFrame, bundles: Mapping[str, Any], evaluation: EvaluationParams
) -> tuple[dict[str, Any], dict[str, int]]:
    """A fold's choices from its validation records (``split_records``): the champion among the
    agent x seed and ensemble candidates (``evaluation.selection``), and each agent's
    validation-best seed."""
    candidates = records[records["kind"].isin(["agent", "ensemble"])].reset_index(drop=True)
    champion = select_champion(candidates, evaluation.rank_metric, evaluation.selection)
    best_seed = {}
    for agent in bundles:
        own = candidates[(candidates["agent"] == agent) & (candidates["kind"] == "agent")]
        pick = select_champion(own.reset_index(drop=True), evaluation.rank_metric, "best_candidate")
        best_seed[agent] = pick["seed"] if pick["seed"] is not None else bundles[agent].seeds[0]
    return champion, best_seed


def run_folds(
    folds: Sequence[Fold],
    features: pd.DataFrame,
    prices: pd.DataFrame,
    parameters: CycleParameters | Mapping[str, Any],
    agents: Sequence[str] | None = None,
    cache: FoldCache | None = None,
    executor: Executor | None = None,
) -> list[FoldResult]:
    """:func:`train_folds` then :func:`select_fold` for each fold, in the order of ``folds``."""
    trained = train_folds(folds, features, prices, parameters, agents, cache, executor)
    return [select_fold(trained[f.name], prices, parameters, cache) for f in folds]


def run_fold(
    fold: Fold,
    features: pd.DataFrame,
    prices: pd.DataFrame,
    parameters: CycleParameters | Mapping[str, Any],
    agents: Sequence[str] | None = None,
    cache: FoldCache | None = None,
    executor: Executor | None = None,
) -> FoldResult:
    """One fold trained and selected (:func:`run_folds` of ``[fold]``). Nothing after its
    validation window is read."""
    return run_folds([fold], features, prices, parameters, agents, cache, executor)[0]


def training_histories(results: Sequence[FoldResult]) -> pd.DataFrame:
    """Every fold's training histories in one table: ``fold`` and ``agent`` first, then each
    agent's history columns (``seed``, ``step``, ``eval_score``: the validation score of a
    checkpoint, ``episode_return``, the losses, ...), one row per logged update and seed."""
    frames = [
        h.assign(fold=r.fold.name, agent=agent) for r in results for agent, h in sorted(r.histories.items())
    ]
    if not frames:
        return pd.DataFrame(columns=["fold", "agent", "seed", "step"])
    table = pd.concat(frames, ignore_index=True)
    return table[["fold", "agent", *[c for c in table.columns if c not in ("fold", "agent")]]]


def stitched_lanes(results: Sequence[FoldResult], ensembles: bool) -> list[tuple[str, str, int, list]]:
    """``(kind, run, seed, [(bundle, seed, name) per fold])`` for every stitched lane: the
    procedure (each fold's champion), each agent's validation-best seed, each agent x seed and
    seed ensemble. Reads ``bundles``, ``champion`` and ``best_seed`` of each fold result (the
    portfolio walk-forward's too)."""
    agents = sorted(results[0].bundles)
    lanes = []

    def per_fold(pick):
        return [
            (r.bundles[a], s, f"{r.fold.name}/{a}/{seed_label(s)}") for r in results for a, s in [pick(r)]
        ]

    champions = [(r.champion["agent"], r.champion["seed"]) for r in results]
    if all(a is not None for a, _ in champions):
        lanes.append(
            ("procedure", "procedure", 0, per_fold(lambda r: (r.champion["agent"], r.champion["seed"])))
        )
    for a in agents:
        lanes.append(("agent_selected", a, 0, per_fold(lambda r, a=a: (a, r.best_seed[a]))))
        seeds = results[0].bundles[a].seeds
        lanes += [("agent", a, s, per_fold(lambda r, a=a, s=s: (a, s))) for s in seeds]
        if ensembles and len(seeds) > 1:
            lanes.append(("ensemble", a, ENSEMBLE_SEED, per_fold(lambda r, a=a: (a, ENSEMBLE_SEED))))
    return lanes


def _lane_ledger(result, lanes) -> pd.DataFrame:
    frame = pd.DataFrame(result)
    lane = frame.pop("lane").to_numpy()
    frame.insert(0, "seed", np.asarray([s for _, _, s, _ in lanes], dtype=np.int64)[lane])
    frame.insert(0, "run", np.asarray([r for _, r, _, _ in lanes], dtype=object)[lane])
    frame.insert(0, "kind", np.asarray([k for k, _, _, _ in lanes], dtype=object)[lane])
    return frame


def stitch(
    results: Sequence[FoldResult],
    features: pd.DataFrame,
    prices: pd.DataFrame,
    parameters: CycleParameters | Mapping[str, Any],
) -> StitchedRecord:
    """Replay every fold's choices over the test windows as one account per lane."""
    env, evaluation = _blocks(parameters, "environment", "evaluation")
    env = env.replace(episode_length=None)
    folds = [r.fold for r in results]
    sm = stitched_market(features, prices, folds, {r.fold.name: r.tables.scaler for r in results}, env.window)
    lanes = stitched_lanes(results, evaluation.ensembles)
    device = str(env.resolve_device())
    switch = FoldSwitch.of_lanes([per_fold for *_, per_fold in lanes], sm.starts, device)
    agents = replay(sm.market, env, switch, num_envs=len(lanes))
    close = prices["Close"].iloc[: sm.first_row + sm.market.n_bars]
    past = Prices(close.to_numpy(dtype=float), close.index, ("Close",), start=sm.first_row)
    frames = [_lane_ledger(agents, lanes)]
    setups = {"agents": agents.config}
    for kind, name, seeds, res in replay_benchmarks(sm.market, env, evaluation.benchmarks, past):
        frame = pd.DataFrame(res)
        frame.insert(0, "seed", np.asarray(seeds, dtype=np.int64)[frame.pop("lane").to_numpy()])
        frame.insert(0, "run", name)
        frame.insert(0, "kind", kind)
        frames.append(frame)
        setups[name] = res.config
    check_run_setups(setups)
    ledger = pd.concat(frames, ignore_index=True)
    ledger.insert(0, "split", "walk_forward")
    records = split_records(ledger, "walk_forward")
    recon, folds = _per_fold(ledger, sm, env, results)
    index = sm.market.index
    window = {"start": index[sm.starts[0]].date().isoformat(), "end": index[-1].date().isoformat()}
    # the raw OHLCV of the traded bars, as the single split fingerprints its test window
    table = prices.iloc[sm.first_row + sm.starts[0] : sm.first_row + sm.market.n_bars]
    return StitchedRecord(
        ledger, records, folds, recon, window, {"data_fingerprint": window_fingerprint(table)}
    )


def _per_fold(ledger, sm, env, results):
    """Reconcile the procedure and buy-and-hold lanes by fold; per-fold Sharpe and champion."""
    recon, pieces = {}, {}
    for run, lane in reference_lanes(ledger).items():
        segments = fold_segments(lane, sm.starts, sm.folds)
        recon[run] = reconcile_segments(lane, segments, env.initial_capital, close=sm.market.close)
        pieces[run] = {name: seg["equity"] for name, seg in segments.items()}
    return recon, fold_table(results, pieces, infer_periods_per_year(sm.market.index))


def reference_lanes(ledger: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The stitched procedure and buy-and-hold lanes (seed 0) of a ledger, those it has."""
    out = {}
    for kind, run in (("procedure", "procedure"), ("benchmark", "buy_and_hold")):
        lane = ledger[(ledger["kind"] == kind) & (ledger["run"] == run) & (ledger["seed"] == 0)]
        if not lane.empty:
            out[run] = lane
    return out


def fold_table(
    results: Sequence[FoldResult],
    pieces: Mapping[str, Mapping[str, Sequence[float]]],
    periods_per_year: float,
) -> pd.DataFrame:
    """One row per fold: its windows, champion, validation Sharpe, and for each stitched lane in
    ``pieces`` (run -> fold -> the fold's piece of equity) its test Sharpe and return."""
    rows = []
    for r in results:
        row = {
            "fold": r.fold.name,
            "label": r.fold.label,
            "test_start": r.fold.test.start.date().isoformat(),
            "test_end": r.fold.test.end.date().isoformat(),
            "champion": None
            if r.champion["agent"] is None
            else f"{r.champion['agent']} {seed_label(r.champion['seed'])}",
            "validation_sharpe": (r.champion.get("validation") or {}).get("sharpe"),
        }
        for run, by_fold in pieces.items():
            sharpe, total = fold_test_figures(by_fold[r.fold.name], periods_per_year)
            row[f"{run}_test_sharpe"], row[f"{run}_test_return"] = sharpe, total
        rows.append(row)
    return pd.DataFrame(rows)


def fold_test_figures(equity: Sequence[float] | pd.Series, periods_per_year: float) -> tuple[float, float]:
    """``(sharpe, total_return)`` of one fold's piece of a stitched lane: its equity from the bar
    its first return is measured from to its last bar (shared with the neighbouring pieces).

    Ruin-aware (``metrics.equity_returns``): the piece in which the account is ruined has its
    Sharpe up to the bar of ruin and a return of -1; a piece that starts ruined (an earlier fold
    lost everything, nothing was traded since) has neither (NaN, NaN)."""
    values = np.asarray(equity, dtype=float)
    if values[0] <= 0:
        return math.nan, math.nan
    rets, ruined = equity_returns(pd.Series(values))
    sharpe = performance_metrics(rets, periods_per_year=periods_per_year)["sharpe"]
    return sharpe, -1.0 if ruined else float(values[-1] / values[0] - 1.0)


def judge(
    record: StitchedRecord,
    results: Sequence[FoldResult],
    parameters: CycleParameters | Mapping[str, Any],
    *,
    earlier_decisions: Sequence[Mapping[str, Any]] = (),
    config: str = "",
    tuning_studies: Sequence[Mapping[str, Any]] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The verdict on the procedure's stitched record and the gate decision to record.

    ``tuning_studies`` (the registry's ``tuning_study`` events): every trial of a study whose
    validation windows overlap the stitched window is one more configuration tried on it; the
    trials raise N of the deflated PSR and the DSR's trial count (``selection.tuning_trials``)."""
    (evaluation,) = _blocks(parameters, "evaluation")
    recs = record.records
    bh = recs[(recs["kind"] == "benchmark") & (recs["agent"] == "buy_and_hold")].iloc[0].to_dict()
    proc = recs[recs["kind"] == "procedure"]
    fingerprint = record.extra["data_fingerprint"]
    reuse = window_reuse(list(earlier_decisions), fingerprint, record.window, config)
    tuning = tuning_looks(list(tuning_studies), record.window)
    n_configurations = reuse["n_configurations"] + tuning["trials"]
    trials = recs[recs["kind"].isin(["agent", "ensemble"])]
    pbo = _pbo(record.ledger)
    decided_on = {
        "split": "walk_forward",
        **record.window,
        "data_fingerprint": fingerprint,
        "folds": [r.fold.name for r in results],
        "what": "the procedure's stitched record: each fold's champion, chosen on its validation "
        "window, trading its test window, one account across the folds",
    }
    universe = record.extra.get("universe")
    if universe is not None:
        decided_on["what"] = (
            "the portfolio procedure's stitched record: each fold's champion, chosen on its validation "
            "window, trading its test window, one account across the folds; the gate's buy_and_hold is "
            "equal weight bought at the first bar and held"
        )
    if proc.empty:
        verdict = {"passed": False, "reason": "a fold has no champion", "decided_on": decided_on}
        if universe is not None:
            verdict["universe"] = list(universe)
        return json_safe(verdict), json_safe({**_decision(verdict, fingerprint, record.window, config)})
    proc = proc.iloc[0].to_dict()
    decided_on["n_bars"] = int(proc["n_bars"])
    dpsr = deflated_psr(proc, float(bh["sharpe_per_bar"]), n_configurations)
    gate = evaluate_gate({**proc, "psr": dpsr["value"]}, bh, evaluation.gate)
    gate["rules"]["min_psr"]["deflated_by_configurations"] = n_configurations
    n_trials = sum(len(h) for r in results for h in r.histories.values())
    # a ruined trial (-inf) and a tuning trial, with no Sharpe on this window (NaN), are counted,
    # not in the variance; a ruined procedure has no DSR (NaN, as its PSR)
    trial_sharpes = ruin_aware_scores(trials["sharpe_per_bar"], trials["ruined"]).tolist()
    trial_sharpes += [math.nan] * tuning["trials"]
    dsr = record_dsr(
        float(proc["sharpe_per_bar"]),
        int(proc["n_bars"]),
        trial_sharpes,
        finite_or(proc.get("skew"), 0.0),
        finite_or(proc.get("kurtosis"), 3.0),
        bool(proc["ruined"]),
    )
    verdict = {
        "passed": bool(gate["passed"]),
        "decided_on": decided_on,
        "rules": gate["rules"],
        "thresholds": evaluation.gate.to_dict(),
        "procedure": {k: proc.get(k) for k in ("sharpe", "total_return", "max_drawdown", "n_bars")},
        "buy_and_hold": {k: bh.get(k) for k in ("sharpe", "total_return", "max_drawdown", "n_bars")},
        "deflation": dpsr,
        "window_reuse": reuse,
        "dsr": {
            "value": dsr,
            "n_trials": int(len(trial_sharpes)),
            "over": "every stitched agent x seed and ensemble, plus every trial of a hyperparameter "
            "study whose validation windows overlap the stitched window",
        },
        "pbo": pbo,
        "selection": {
            "rule": evaluation.selection,
            "checkpoint_evaluations": int(n_trials),
            "selected_on": "each fold's validation window",
            "tuning_trials": int(tuning["trials"]),
            "tuning_studies": tuning["studies"],
        },
        "folds": record.folds.to_dict("records"),
        "reconciliation": record.reconciliation,
        "config_sha256": config,
    }
    if universe is not None:
        verdict["universe"] = list(universe)
    return json_safe(verdict), json_safe(_decision(verdict, fingerprint, record.window, config))


def _decision(verdict, fingerprint, window, config) -> dict[str, Any]:
    return {
        "data_fingerprint": fingerprint,
        "window": dict(window),
        "config_sha256": config,
        "passed": bool(verdict["passed"]),
        "decided_on": "walk_forward",
        "sharpe": (verdict.get("procedure") or {}).get("sharpe"),
        "n_bars": (verdict.get("decided_on") or {}).get("n_bars"),
        "deflated_psr": (verdict.get("deflation") or {}).get("value"),
    }


def _pbo(ledger: pd.DataFrame) -> dict[str, Any]:
    """PBO over the agent × seed candidates' stitched per-bar returns: each lane's
    ``metrics.equity_returns`` on the common bars, so a ruined lane's returns end with -1 on its
    bar of ruin and are NaN on the frozen bars after it (``probability_of_backtest_overfitting``
    scores it -inf on every half from there)."""
    cand = ledger[ledger["kind"] == "agent"]
    if cand.empty:
        return {"pbo": math.nan, "reason": "no agent x seed candidates"}
    bars = np.sort(cand["bar"].unique())[1:]  # the first row of a lane is its start: no return
    returns = pd.DataFrame(
        {
            f"{run}/{seed_label(int(seed))}": equity_returns(lane.set_index("bar")["equity"])[0]
            for (run, seed), lane in cand.groupby(["run", "seed"], sort=True)
        },
        index=pd.Index(bars, name="bar"),
    )
    n_blocks = 16 if len(returns) >= 16 * 8 else 2 * max(1, len(returns) // 16)
    out = probability_of_backtest_overfitting(returns, n_blocks=n_blocks)
    keys = ("pbo", "n_candidates", "n_ruined", "n_blocks", "n_combinations", "prob_oos_loss", "reason")
    return {k: out[k] for k in keys}


def deployment_champion(
    deployment: FoldResult, verdict: Mapping[str, Any], policy: Any, evaluation: EvaluationParams
) -> dict[str, Any]:
    """The ``champion`` document (docs/contracts.md) of the deployment fold's champion: chosen on
    the deployment fold's validation window, stored as ``policy`` (a loaded, versioned artifact,
    whose checked digest the champion carries to the registry),
    and judged by the procedure's stitched record (``verdict``): the procedure that chose it is
    what the walk-forward tested."""
    sel = deployment.champion
    val = {
        k: v for k, v in (sel.get("validation") or {}).items() if k not in ("split", "kind", "agent", "seed")
    }
    passed = bool(verdict.get("passed"))
    return json_safe(
        {
            "agent": sel["agent"],
            "seed": sel["seed"],
            "kind": sel.get("kind"),
            "member": seed_label(sel["seed"]),
            "policy_version": getattr(policy, "version", None),
            "policy_filepath": getattr(policy, "filepath", None),
            "policy_sha256": getattr(policy, "sha256", None),
            "validation_metrics": val or None,
            "test_metrics": dict(verdict.get("procedure") or {}) or None,
            "verdict_passed": passed,
            "selected_on": "validation",
            "selection_rule": evaluation.selection,
            "decided_on": "walk_forward",
            "rank_metric": evaluation.rank_metric,
            "reason": None if passed else "the walk-forward procedure's stitched record failed the gate",
            "n_candidates": sel["n_candidates"],
            "fold": deployment.fold.to_dict(),
            "verdict": {
                "passed": passed,
                "rules": verdict.get("rules", {}),
                "decided_on": verdict.get("decided_on"),
            },
        }
    )
