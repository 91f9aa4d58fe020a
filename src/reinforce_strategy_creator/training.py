"""Train one agent over several seeds, select checkpoints on validation, bundle the result.

:func:`train_agent` trains a ``training.<agent>`` block once per seed on the TRAIN table,
keeps each seed's checkpoint with the best validation Sharpe (:func:`validation_sharpe`;
validation selects weights but never produces a gradient) and returns a
:class:`~reinforce_strategy_creator.artifacts.PolicyBundle` plus the training history. A
plain module so that training runs, is tested and benchmarked without Kedro (the node in
``pipelines/training/nodes.py`` only calls it). How it works, the honesty rules and the
spec's fields: docs/training.md.

At N >= 2 (a universe, ``PortfolioCore`` members) :func:`train_portfolio_members` trains one
member per seed on the TRAIN panel (feature scaler fit on it alone), scores checkpoints by
:func:`portfolio_validation_sharpe` (the deterministic replay ``evaluation.replay.replay_weights``
over the VALIDATION panel, whose first ``window - 1`` rows are history; the same Sharpe as
:func:`validation_sharpe`), early-stops and keeps the best checkpoint, and
:func:`portfolio_bundle` turns the results into the same safe artifact.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .agents import ALGORITHMS, TrainingDivergedError, TrainResult, resolve_device
from .agents.ensemble import ensemble_rule
from .artifacts import PolicyBundle
from .env import EnvConfig, MarketArrays, TradingVectorEnv, replay
from .env.portfolio import PortfolioCore
from .evaluation.metrics import bar_returns, infer_periods_per_year, is_ruined, performance_metrics
from .evaluation.replay import replay_weights
from .features import data_fingerprint, feature_spec_sha256, scaler_sha256
from .panel import PortfolioInputError, PortfolioPanel, fit_feature_scaler
from .params.agents import AGENT_CONFIGS, agent_config
from .params.base import ParameterError
from .params.training import COMMON_KEYS, AgentPlan, TrainingCommon, TrainingParams, plan_agent

if TYPE_CHECKING:
    from .compute import Executor

__all__ = [
    "AgentPlan",
    "COMMON_KEYS",
    "TABLE",
    "TrainingCommon",
    "TrainingConfigError",
    "TrainingParams",
    "TrainingTables",
    "cpu_state",
    "data_fingerprint",
    "divergence_named",
    "equity_sharpe",
    "plan_agent",
    "portfolio_bundle",
    "portfolio_validation_sharpe",
    "run_sharpe",
    "scaler_sha256",
    "seed_job_payloads",
    "seed_selection",
    "train_agent",
    "train_agents",
    "train_members",
    "train_on_tables",
    "train_portfolio_members",
    "train_seeds_job",
    "validation_sharpe",
]

VALIDATION_METRIC = "sharpe"


#: Kept for callers that catch training's own parameter errors.
TrainingConfigError = ParameterError


# --------------------------------------------------------------------------- fingerprints
def _package_version() -> str:
    from . import __version__

    return str(__version__)


# --------------------------------------------------------------------------- validation
def validation_sharpe(
    policy: nn.Module, market: MarketArrays, config: EnvConfig, periods_per_year: float
) -> float:
    """Annualised Sharpe of the deterministic policy over the full validation period.

    ``env.replay`` (same core, costs and capital as training) + the evaluation library's
    ``bar_returns`` / ``performance_metrics``. A policy that never trades has zero returns
    and scores 0.0 (empyrical gives NaN for zero variance; 0 is the honest Sharpe of cash).
    A policy whose account is wiped out (``evaluation.metrics.is_ruined``, the rule the
    evaluation's ``ruined`` flag uses) scores -inf (never selected).
    """
    device = next(policy.parameters()).device
    bt = replay(
        market,
        config,
        lambda obs: policy.act(obs.to(device), deterministic=True),
        num_envs=1,
        device=str(device),
    )
    return equity_sharpe(bt.lane(0)["equity"], periods_per_year)


def equity_sharpe(equity: pd.Series, periods_per_year: float) -> float:
    """The validation score of one equity curve (dates as index), at any N: -inf once ruined
    (``evaluation.metrics.is_ruined``), 0.0 for a curve that never moves, else the annualised
    Sharpe of its bar returns (0.0 where that is not finite)."""
    if is_ruined(equity):
        return -math.inf
    r = bar_returns(equity)
    if np.all(r.to_numpy() == 0.0):
        return 0.0
    s = performance_metrics(r, periods_per_year=periods_per_year)["sharpe"]
    return float(s) if math.isfinite(s) else 0.0


# --------------------------------------------------------------------------- training
def _check_tables(train: pd.DataFrame, validation: pd.DataFrame, history: int = 0) -> None:
    for name, df in (("model_input_train", train), ("model_input_validation", validation)):
        if not isinstance(df, pd.DataFrame):
            raise TrainingConfigError(f"{name}: expected a DataFrame, got {type(df).__name__}")
    ft = [c for c in train.columns if str(c).startswith("feat_")]
    fv = [c for c in validation.columns if str(c).startswith("feat_")]
    if ft != fv:
        raise TrainingConfigError(
            f"model_input_validation has feature columns {fv} but model_input_train has {ft}; "
            "rerun feature_engineering so both come from the same feature spec"
        )
    if not 0 <= history < max(len(validation), 1):
        raise TrainingConfigError(
            f"validation_history = {history} rows, but model_input_validation has {len(validation)} rows"
        )
    traded = validation.iloc[history:]
    if len(train) and len(traded) and not train.index.max() < traded.index.min():
        raise TrainingConfigError(
            f"model_input_validation starts {traded.index.min()} but model_input_train ends "
            f"{train.index.max()}: validation must come strictly after train; "
            "check feature_engineering.splits"
        )


def train_agent(
    model_input_train: pd.DataFrame,
    model_input_validation: pd.DataFrame,
    feature_scaler: Mapping[str, Any],
    environment: EnvConfig | Mapping[str, Any],
    plan: AgentPlan,
    *,
    score_fn: Callable[[nn.Module], float] | None = None,
    feature_spec: Mapping[str, Any] | None = None,
    validation_history: int = 0,
    executor: Executor | None = None,
) -> tuple[PolicyBundle, pd.DataFrame]:
    """Train one agent (a validated ``training.<agent>`` block,
    :class:`~.params.training.AgentPlan`) once per seed; see the module docstring.

    ``backend: sb3`` in the block trains with stable-baselines3 (``agents.sb3_backend``); the
    bundle has the same contract. A NaN/inf loss raises ``TrainingDivergedError`` naming
    agent, seed and update, and nothing is returned. ``feature_spec``
    (``feature_engineering.features``) is fingerprinted into the spec
    (``feature_spec_sha256``) so that evaluation and deployment can refuse the policy when
    the features are computed differently from training.

    ``score_fn(policy) -> float`` replaces the validation Sharpe (tests use it to script a
    sequence of scores); by default checkpoints are scored by :func:`validation_sharpe`.

    ``validation_history`` rows at the head of ``model_input_validation`` are history only (a
    walk-forward fold prepends W − 1 rows so that the first decision falls on the window's first
    bar): they may overlap training, and the recorded validation period starts after them.

    ``executor`` (``compute.open_executor``): each seed is a job (:func:`train_seeds_job`) run on
    it; the bundle and history are those of the in-process path (see :func:`train_agents`).
    """
    if executor is not None:
        if score_fn is not None:
            raise TypeError(
                "train_agent: score_fn cannot be sent to an executor's workers; pass one or the other"
            )
        return train_agents(
            model_input_train,
            model_input_validation,
            feature_scaler,
            environment,
            [plan],
            executor,
            feature_spec=feature_spec,
            validation_history=validation_history,
            label=f"training.{plan.name}",
        )[plan.name]
    _check_tables(model_input_train, model_input_validation, validation_history)
    env_cfg = EnvConfig.parse(environment)
    device = resolve_device(plan.settings.device)
    env_cfg_dev = env_cfg.replace(device=device.type)
    train_market = MarketArrays.from_frame(model_input_train, name="model_input_train")
    val_market = MarketArrays.from_frame(model_input_validation, name="model_input_validation")
    ppy = infer_periods_per_year(model_input_validation.index)
    if score_fn is None:

        def score_fn(policy: nn.Module) -> float:
            return validation_sharpe(policy, val_market, env_cfg_dev, ppy)

    with _torch_threads(plan.settings.num_threads):
        runs = _train_seeds(plan, train_market, env_cfg_dev, device, score_fn)
    provenance = _provenance(
        model_input_train, model_input_validation.iloc[validation_history:], feature_scaler, feature_spec
    )
    spec = _bundle_spec(plan, env_cfg, device, list(train_market.feature_names), provenance, runs, ppy)
    history = pd.concat(runs.histories, ignore_index=True)
    return PolicyBundle(spec=spec, state_dicts=runs.state_dicts), history


# --------------------------------------------------------------------------- jobs
#: the table name of a single split's jobs (a walk-forward names each fold's tables after the fold)
TABLE = "model_input"


@dataclass(frozen=True)
class TrainingTables:
    """One training set: the TRAIN and VALIDATION tables, the scaler they were scaled with and the
    ``validation_history`` rows at the head of VALIDATION that are history only."""

    train: pd.DataFrame
    validation: pd.DataFrame
    feature_scaler: Mapping[str, Any]
    validation_history: int = 0


def seed_job_payloads(
    plan: AgentPlan,
    environment: EnvConfig,
    device: torch.device,
    threads: int,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    tables: Sequence[str] = (TABLE,),
) -> list[dict[str, Any]]:
    """The payloads of :func:`train_seeds_job` for ``plan``, plain data only: its members are
    ``tables`` x ``seeds`` (table by table, so that the seeds of one table step one fused env).
    When the seeds train as one population (:func:`trains_as_population`) ONE job holds every
    member, the seeds of every table (e.g. walk-forward folds x seeds); else each member is a job.

    A job's ``members`` (``[table, seed]`` pairs) are what it trains and returns, in order.
    ``progress=False`` turns the progress bar off (worker processes would interleave theirs; the
    driver shows the jobs' progress instead); it changes no result."""
    common, block = plan.settings.to_params(), plan.to_params()
    if not progress:
        common["progress"] = False
        if "progress" in block:
            block["progress"] = False
    env = environment.replace(device=device.type).to_params()
    seeds = tuple(int(seed) for seed in (plan.settings.seeds if seeds is None else seeds))
    members = [(str(table), seed) for table in tables for seed in seeds]
    groups = [members] if trains_as_population(plan, seeds) else [[m] for m in members]
    return [
        {
            "agent": plan.name,
            "common": common,
            "block": block,
            "environment": env,
            "device": str(device),
            "threads": int(plan.settings.num_threads or threads),
            "members": [list(m) for m in group],
        }
        for group in groups
    ]


def train_seeds_job(
    payload: Mapping[str, Any], shared: Mapping[str, Mapping[str, pd.DataFrame]]
) -> dict[str, Any]:
    """One job: train ``payload["members"]`` (``[table, seed]`` pairs) of one agent, each on
    ``shared[table]["train"]`` with its checkpoints scored on ``shared[table]["validation"]``. A pure
    function of its arguments (each member seeds every RNG it uses, and its result does not depend
    on the other members), run in whatever process the executor chose; plain data in and out.

    Returns ``{"agent", "policy_spec", "steps", "members": [{"table", "seed", "state_dict":
    safetensors bytes, "keys": the state dict's key order, "history", "score", "steps"}, ...]}``
    in the order of ``payload["members"]``."""
    from safetensors.torch import save

    plan = plan_agent(payload["common"], payload["block"], payload["agent"])
    env_cfg = EnvConfig.parse(payload["environment"])
    device = torch.device(payload["device"])
    members = [(str(table), int(seed)) for table, seed in payload["members"]]
    markets, scorers = {}, {}
    for table in dict.fromkeys(t for t, _ in members):
        train, validation = shared[table]["train"], shared[table]["validation"]
        markets[table] = MarketArrays.from_frame(train, name=f"{table}_train")
        scorers[table] = _validation_scorer(validation, env_cfg, f"{table}_validation")
    out: dict[str, Any] = {"agent": plan.name, "members": [], "steps": 0, "policy_spec": {}}
    with _torch_threads(int(payload["threads"])):
        results = _train_members(
            plan, [(markets[t], seed, scorers[t]) for t, seed in members], env_cfg, device
        )
        for (table, seed), res in zip(members, results, strict=True):
            state = {k: v.detach().to("cpu").contiguous() for k, v in res.policy.state_dict().items()}
            h = res.history.copy()
            h.insert(0, "seed", np.int64(seed))
            out["members"].append(
                {
                    "table": table,
                    "seed": seed,
                    "state_dict": save(state),
                    "keys": list(state),
                    "history": h,
                    "score": float(res.best_score),
                    "steps": int(res.steps),
                }
            )
            out["policy_spec"] = dict(res.policy.spec)
            out["steps"] += int(res.steps)
    return out


def _validation_scorer(
    validation: pd.DataFrame, env_cfg: EnvConfig, name: str
) -> Callable[[nn.Module], float]:
    """``score_fn(policy)``: :func:`validation_sharpe` over the VALIDATION table."""
    market = MarketArrays.from_frame(validation, name=name)
    ppy = infer_periods_per_year(validation.index)

    def score_fn(policy: nn.Module) -> float:
        return validation_sharpe(policy, market, env_cfg, ppy)

    return score_fn


def _runs_from_jobs(table: str, seeds: Sequence[int], results: Sequence[Mapping[str, Any]]) -> _SeedRuns:
    """The per-seed results of ``table`` in an agent's jobs, in the order of its seeds."""
    from safetensors.torch import load

    per_seed = {m["seed"]: m for res in results for m in res["members"] if m["table"] == table}
    runs = _SeedRuns()
    for seed in seeds:
        r = per_seed[int(seed)]
        loaded = load(r["state_dict"])
        runs.state_dicts[seed] = {k: loaded[k] for k in r["keys"]}
        runs.scores[seed] = r["score"]
        runs.histories.append(r["history"])
    runs.policy_spec = dict(results[-1]["policy_spec"])
    return runs


def train_on_tables(
    tables: Mapping[str, TrainingTables],
    environment: EnvConfig | Mapping[str, Any],
    plans: Sequence[AgentPlan],
    executor: Executor | None = None,
    *,
    feature_spec: Mapping[str, Any] | None = None,
    label: str = "training",
) -> dict[str, dict[str, tuple[PolicyBundle, pd.DataFrame]]]:
    """Every plan's seeds trained on every training set in ``tables`` (e.g. one per walk-forward
    fold): ``{table: {agent: (bundle, history)}}``, each as :func:`train_agent` would give for that
    table alone, bit for bit.

    The jobs are :func:`seed_job_payloads` over all tables: an agent whose seeds train as one
    population trains the seeds of every table as ONE population (tables x seeds members;
    docs/populations.md: a member's result does not depend on the others), else one job per table
    and seed. The jobs run on ``executor`` (one map, the tables sent once per worker), or here, one
    after the other, when it is None; the bundles are assembled here, in the driver. Each job runs
    with ``training.<agent>.num_threads``, or ``compute.threads_per_worker`` (the current torch
    threads without an executor) when that is null."""
    env_cfg = EnvConfig.parse(environment)
    prepared = {}
    for name, t in tables.items():
        _check_tables(t.train, t.validation, t.validation_history)
        # built here too so that bad tables stop the run before any job starts
        features = list(MarketArrays.from_frame(t.train, name=f"{name}_train").feature_names)
        MarketArrays.from_frame(t.validation, name=f"{name}_validation")
        provenance = _provenance(
            t.train, t.validation.iloc[t.validation_history :], t.feature_scaler, feature_spec
        )
        prepared[name] = (features, provenance, infer_periods_per_year(t.validation.index))
    devices = {p.name: resolve_device(p.settings.device) for p in plans}
    threads = torch.get_num_threads() if executor is None else executor.threads_per_worker
    progress = executor is None or executor.backend == "sequential"
    payloads, owner = [], []
    for p in plans:
        jobs = seed_job_payloads(p, env_cfg, devices[p.name], threads, progress=progress, tables=list(tables))
        payloads += jobs
        owner += [p.name] * len(jobs)
    shared = {name: {"train": t.train, "validation": t.validation} for name, t in tables.items()}
    if executor is None:
        results = [train_seeds_job(payload, shared) for payload in payloads]
    else:
        results = executor.map(train_seeds_job, payloads, shared, label=label)
    out: dict[str, dict[str, tuple[PolicyBundle, pd.DataFrame]]] = {}
    for name in tables:
        features, provenance, ppy = prepared[name]
        out[name] = {}
        for p in plans:
            runs = _runs_from_jobs(name, p.settings.seeds, [r for r, o in zip(results, owner) if o == p.name])
            spec = _bundle_spec(p, env_cfg, devices[p.name], features, provenance, runs, ppy)
            out[name][p.name] = (
                PolicyBundle(spec=spec, state_dicts=runs.state_dicts),
                pd.concat(runs.histories, ignore_index=True),
            )
    return out


def train_agents(
    model_input_train: pd.DataFrame,
    model_input_validation: pd.DataFrame,
    feature_scaler: Mapping[str, Any],
    environment: EnvConfig | Mapping[str, Any],
    plans: Sequence[AgentPlan],
    executor: Executor,
    *,
    feature_spec: Mapping[str, Any] | None = None,
    validation_history: int = 0,
    label: str = "training",
) -> dict[str, tuple[PolicyBundle, pd.DataFrame]]:
    """Every seed of every plan as jobs on ``executor`` (:func:`train_on_tables` with one training
    set); per agent the same bundle and history as :func:`train_agent` without an executor."""
    tables = {
        TABLE: TrainingTables(model_input_train, model_input_validation, feature_scaler, validation_history)
    }
    return train_on_tables(tables, environment, plans, executor, feature_spec=feature_spec, label=label)[
        TABLE
    ]


@contextlib.contextmanager
def _torch_threads(num_threads: int | None):
    """``torch.set_num_threads(num_threads)`` for the block (unchanged when None), restored."""
    prev_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)


@dataclass
class _SeedRuns:
    """Per seed: the chosen weights (on CPU), their validation score and the history."""

    state_dicts: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    histories: list[pd.DataFrame] = field(default_factory=list)
    policy_spec: dict[str, Any] = field(default_factory=dict)


def _train_seeds(
    plan: AgentPlan,
    market: MarketArrays,
    env_cfg: EnvConfig,
    device: torch.device,
    score_fn: Callable[[nn.Module], float],
) -> _SeedRuns:
    runs = _SeedRuns()
    seeds = list(plan.settings.seeds)
    members = [(market, int(seed), score_fn) for seed in seeds]
    for seed, res in zip(seeds, _train_members(plan, members, env_cfg, device)):
        runs.state_dicts[seed] = cpu_state(res.policy)
        runs.scores[seed] = float(res.best_score)
        runs.policy_spec = dict(res.policy.spec)
        h = res.history.copy()
        h.insert(0, "seed", np.int64(seed))
        runs.histories.append(h)
    return runs


def trains_as_population(plan: AgentPlan, seeds: Sequence[int]) -> bool:
    """Whether ``seeds`` of ``plan`` train as one population (``training.<agent>.population``,
    own torch agents only, more than one seed). The seeds of several training sets (walk-forward
    folds) then train as one population too."""
    return plan.settings.population and plan.backend == "torch" and len(seeds) > 1


def _train_members(
    plan: AgentPlan,
    members: Sequence[tuple[MarketArrays, int, Callable[[nn.Module], float]]],
    env_cfg: EnvConfig,
    device: torch.device,
) -> list[TrainResult]:
    """Train ``members`` (``(market, seed, score_fn)``) of ``plan``: with the block's own torch
    agent through :func:`train_members` (one population when the plan trains its seeds as one,
    :func:`trains_as_population`), or one seed at a time with the ``sb3`` backend. Either way a
    pure function of its arguments: the same members give the same weights in any process."""
    if plan.backend == "sb3":
        with divergence_named(plan.name):
            return [
                _train_sb3(plan, market, env_cfg, device, seed, score_fn)
                for market, seed, score_fn in members
            ]
    settings = plan.settings
    return train_members(
        ALGORITHMS[plan.algorithm][1],
        [
            (functools.partial(make_train_env, market, env_cfg, settings.num_envs, seed), seed, score_fn)
            for market, seed, score_fn in members
        ],
        population=trains_as_population(plan, [seed for _, seed, _ in members]),
        agent=plan.name,
        config=plan.config,
        device=str(device),
        eval_every=settings.eval_every,
        patience=settings.patience,
        progress=settings.progress,
    )


def train_members(
    trainer: Callable[..., list[TrainResult]],
    members: Sequence[tuple[Callable[[], Any], int, Callable[[nn.Module], float] | None]],
    *,
    population: bool,
    agent: str,
    **kwargs: Any,
) -> list[TrainResult]:
    """Train ``members`` (``(make_env, seed, score_fn)``; ``make_env()`` builds the member's
    training env: a ``TradingVectorEnv`` or a ``PortfolioCore``) with ``trainer``
    (``agents.train_ppo`` / ``train_a2c`` / ``train_dqn``, ``kwargs`` passed on): as one
    population (docs/populations.md) or, ``population=False``, as one population of one per
    member, one after the other; a member's weights are the same either way. One result per
    member, in order; a ``TrainingDivergedError`` is reported under ``agent``."""
    with divergence_named(agent):
        if population:
            return trainer(
                [make() for make, _, _ in members],
                seeds=[int(s) for _, s, _ in members],
                eval_fns=[f for _, _, f in members],
                **kwargs,
            )
        return [trainer([make()], seeds=[int(s)], eval_fns=[f], **kwargs)[0] for make, s, f in members]


@contextlib.contextmanager
def divergence_named(agent: str):
    """A ``TrainingDivergedError`` raised inside is reported under the agent name ``agent``."""
    try:
        yield
    except TrainingDivergedError as exc:
        if exc.agent == agent:
            raise
        raise TrainingDivergedError(agent, exc.seed, exc.update, exc.what, exc.value) from exc


def cpu_state(policy: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``policy``'s state dict on the CPU (what a bundle stores)."""
    return {k: v.detach().to("cpu").clone() for k, v in policy.state_dict().items()}


def _train_sb3(
    plan: AgentPlan,
    market: MarketArrays,
    env_cfg: EnvConfig,
    device: torch.device,
    seed: int,
    score_fn: Callable[[nn.Module], float],
) -> TrainResult:
    """One seed with the stable-baselines3 backend."""
    from .agents.sb3_backend import train_sb3

    settings = plan.settings
    return train_sb3(
        market,
        env_cfg,
        plan.config,
        agent=plan.name,
        seed=seed,
        num_envs=settings.num_envs,
        device=str(device),
        eval_fn=score_fn,
        eval_every=settings.eval_every,
        patience=settings.patience,
    )


def _provenance(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    feature_scaler: Mapping[str, Any],
    feature_spec: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What the policy was trained on, for evaluation and deployment to check against."""
    return {
        "scaler_sha256": scaler_sha256(feature_scaler),
        "feature_spec_sha256": None if feature_spec is None else feature_spec_sha256(feature_spec),
        "data_fingerprint": data_fingerprint(train),
        "train_start": train.index.min().isoformat(),
        "train_end": train.index.max().isoformat(),
        "validation_start": validation.index.min().isoformat(),
        "validation_end": validation.index.max().isoformat(),
        "package_version": _package_version(),
    }


def _bundle_spec(
    plan: AgentPlan,
    env_cfg: EnvConfig,
    device: torch.device,
    feature_names: list[str],
    provenance: Mapping[str, Any],
    runs: _SeedRuns,
    ppy: float,
) -> dict[str, Any]:
    """The bundle's JSON spec: the policy's own spec (architecture), what acting needs
    (features, window, positions, environment), where the data came from, how the seeds
    were selected and how the agent was trained."""
    return {
        **runs.policy_spec,
        "algorithm": plan.algorithm,
        "backend": plan.backend,
        "agent": plan.name,
        "feature_names": feature_names,
        "window": env_cfg.window,
        "positions": list(env_cfg.positions),
        "environment": env_cfg.to_params(),
        **provenance,
        **seed_selection(plan.settings.seeds, runs.scores),
        "validation_metric": VALIDATION_METRIC,
        # seed ENSEMBLE_SEED of this artifact: every seed's weights, combined by this rule
        "ensemble_rule": ensemble_rule(runs.policy_spec["kind"]),
        "periods_per_year": ppy,
        "hyperparameters": plan.config.to_dict(),
        "training": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in plan.settings.to_params().items()
            if k != "progress"
        },
        "device": str(device),
    }


def seed_selection(seeds: Sequence[int], scores: dict[int, float]) -> dict[str, Any]:
    """The seeds, the best one (highest finite validation score, lowest seed on ties; the
    first seed when none is finite) and every seed's score (null when not finite)."""
    finite = {s: v for s, v in scores.items() if math.isfinite(v)}
    best_seed = max(finite, key=lambda s: (finite[s], -s)) if finite else seeds[0]
    return {
        "seeds": list(seeds),
        "best_seed": int(best_seed),
        "validation_scores": {str(s): (v if math.isfinite(v) else None) for s, v in scores.items()},
    }


def make_train_env(market: MarketArrays, config: EnvConfig, num_envs: int, seed: int) -> TradingVectorEnv:
    """The batched training env: random episode starts over the TRAIN market only."""
    return TradingVectorEnv(market, config, num_envs=num_envs, seed=seed, device=config.device)


# --------------------------------------------------------------------------- validation
def run_sharpe(equity: np.ndarray, dates: pd.DatetimeIndex, periods_per_year: float) -> float:
    """``training.equity_sharpe`` of a replay's equity curve (an array) over ``dates``."""
    return equity_sharpe(pd.Series(np.asarray(equity, dtype=np.float64), index=dates), periods_per_year)


def portfolio_validation_sharpe(
    policy: nn.Module, panel: PortfolioPanel, config: EnvConfig, periods_per_year: float | None = None
) -> float:
    """Annualised Sharpe of ``policy.decide`` replayed deterministically over ``panel`` (its first
    ``window - 1`` rows are history) with the costs and capital of ``config``."""
    ppy = periods_per_year or infer_periods_per_year(panel.dates)
    run = replay_weights(panel, config, policy.decide, num_lanes=1)
    return run_sharpe(run.equity[0], run.dates, ppy)


# --------------------------------------------------------------------------- training
def _check_inputs(algorithm, train, validation, env: EnvConfig, seeds, num_envs) -> None:
    if algorithm not in AGENT_CONFIGS:
        raise PortfolioInputError(f"algorithm={algorithm!r} unknown; choose one of {sorted(AGENT_CONFIGS)}")
    if not isinstance(env, EnvConfig):
        raise PortfolioInputError(f"env must be an EnvConfig, got {type(env).__name__}")
    if not isinstance(train, PortfolioPanel):
        raise PortfolioInputError(f"train must be a PortfolioPanel, got {type(train).__name__}")
    if len(seeds) == 0:
        raise PortfolioInputError("seeds is empty; give at least one int seed (e.g. seeds=[0])")
    bad = [s for s in seeds if not isinstance(s, (int, np.integer)) or isinstance(s, bool)]
    if bad or len(set(int(s) for s in seeds)) != len(seeds):
        raise PortfolioInputError(f"seeds must be distinct ints, got {list(seeds)!r}")
    if not isinstance(num_envs, int) or num_envs < 1:
        raise PortfolioInputError(f"num_envs must be a positive int, got {num_envs!r}")
    W, E = env.window, env.episode_length
    need = W + (E if E is not None else 1)
    if train.n_bars < need:
        what = f"window={W} + episode_length={E}" if E is not None else f"window={W} + 1"
        raise PortfolioInputError(
            f"train panel has {train.n_bars} rows but env {what} needs at least {need}; "
            "use a longer training period, a smaller env.window or a shorter env.episode_length"
        )
    if validation is not None:
        if not isinstance(validation, PortfolioPanel):
            raise PortfolioInputError(
                f"validation must be a PortfolioPanel or None, got {type(validation).__name__}"
            )
        if validation.n_bars < W + 1:
            raise PortfolioInputError(
                f"validation panel has {validation.n_bars} rows but env.window={W} needs at least {W + 1} "
                f"({W - 1} history rows, then at least two bars to trade); use a longer validation period"
            )
        if validation.tickers != train.tickers or validation.n_features != train.n_features:
            raise PortfolioInputError(
                f"validation panel has tickers {list(validation.tickers)} and {validation.n_features} "
                "features "
                f"but train has {list(train.tickers)} and {train.n_features}: they must match"
            )


def train_portfolio_members(
    algorithm: str,
    config: Any,
    train: PortfolioPanel,
    validation: PortfolioPanel | None,
    env: EnvConfig,
    seeds: Sequence[int],
    *,
    num_envs: int = 64,
    eval_every: int = 10,
    patience: int | None = None,
    population: bool = True,
    progress: bool = False,
    score_fn: Callable[[nn.Module], float] | None = None,
    agent: str | None = None,
) -> list[TrainResult]:
    """Train ``algorithm`` ('ppo', 'a2c', 'dqn') once per seed; one ``TrainResult`` per seed, in order.

    ``config``: the algorithm's block (``params.agents.AGENT_CONFIGS``, with its universe fields:
    the action distribution and reward baseline) or a dict of its fields. Each member trains
    on its own ``PortfolioCore`` over ``train`` (``num_envs`` lanes, episodes of
    ``env.episode_length`` from random starts drawn by its seed). With ``validation`` every
    ``eval_every`` updates (DQN: iterations) a checkpoint is scored by
    :func:`portfolio_validation_sharpe` (or ``score_fn``), ``patience`` evaluations without
    improvement stop the member, and its best checkpoint is returned. ``population=True`` trains
    the seeds as one population (stacked parameters, one batched forward; a member's weights do
    not depend on the other members), ``False`` one seed after the other: the same weights
    (``training.train_members`` with ``agents.train_<algorithm>`` on ``PortfolioCore`` members).
    A divergence is reported under ``agent`` (default: the algorithm).
    """
    seeds = list(seeds)
    _check_inputs(algorithm, train, validation, env, seeds, num_envs)
    cfg, trainer = agent_config(algorithm, config, universe=True), ALGORITHMS[algorithm][1]
    scaler = fit_feature_scaler(train, slice(None))  # the training rows only
    eval_fn = score_fn
    if eval_fn is None and validation is not None:
        ppy = infer_periods_per_year(validation.dates)

        def eval_fn(policy: nn.Module) -> float:
            return portfolio_validation_sharpe(policy, validation, env, ppy)

    def core(seed: int) -> Callable[[], PortfolioCore]:
        return lambda: PortfolioCore(
            train.close, train.features, train.tickers, env, num_envs=num_envs, seed=seed
        )

    return train_members(
        trainer,
        [(core(int(s)), int(s), eval_fn) for s in seeds],
        population=population,
        agent=agent or algorithm,
        config=cfg,
        scaler=scaler,
        device=env.resolve_device(),
        eval_every=eval_every,
        patience=patience,
        progress=progress,
    )


# --------------------------------------------------------------------------- artifacts
def portfolio_bundle(
    results: Sequence[TrainResult],
    seeds: Sequence[int],
    panel: PortfolioPanel,
    env: EnvConfig,
    extra: Mapping[str, Any] | None = None,
) -> PolicyBundle:
    """The trained members as one ``PolicyBundle`` (spec = the policy's JSON spec + tickers,
    feature names, window, the account (``EnvConfig.universe_params``, as the walk-forward's
    bundles record it), seeds, validation scores, best seed)."""
    if len(results) != len(seeds) or not results:
        raise PortfolioInputError(
            f"portfolio_bundle needs one result per seed: {len(results)} vs {len(seeds)}"
        )
    scores = {int(s): float(r.best_score) for s, r in zip(seeds, results, strict=True)}
    spec = dict(results[0].policy.spec)
    spec.update(
        {
            "tickers": list(panel.tickers),
            "feature_names": list(panel.feature_names),
            "window": env.window,
            "positions": [],  # single-asset field; a portfolio acts in weights (see "kind")
            "portfolio_environment": env.universe_params(),
            **seed_selection([int(s) for s in seeds], scores),
            **dict(extra or {}),
        }
    )
    states = {int(s): cpu_state(r.policy) for s, r in zip(seeds, results, strict=True)}
    return PolicyBundle(spec=spec, state_dicts=states)
