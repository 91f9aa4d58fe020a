"""Replay trained policies and benchmarks on one data split, through the environment core.

What: given a model-input table (validation or test), the environment parameters and the
trained ``PolicyBundle`` of every agent, replay

* every seed of every agent (all seeds of an agent batched as lanes of ONE ``env.replay``),
  acting deterministically;
* the benchmarks buy-and-hold, flat, SMA crossover and time-series momentum;
* a seeded random policy over N >= 100 seeds (one batched replay, one lane per seed),

all through the same ``env.replay`` with ONE ``EnvConfig`` built from
``params:environment``, so fills, costs and starting capital are identical for agents and
benchmarks. The result is one long ledger table (one row per run, seed and bar) that the
metrics step reads and that is persisted as Parquet.

Honesty checks that refuse to run (``EvaluationInputError``, a ``ValueError``):

* a policy whose spec says it was trained with other costs, capital, window, positions or
  observation switches than ``params:environment`` (a stale or foreign artifact);
* a policy whose feature names differ from the model-input table's ``feat_*`` columns;
* replays that did not all use the same costs and capital (``check_run_setups``).

Why here and not in the env: the env replays one ``decide`` callable; choosing which runs
to replay, validating artifacts against the configuration and laying out the ledger is the
evaluation stage's job. Importable without Kedro.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..env import EnvConfig, MarketArrays, replay
from .benchmarks import (
    ScheduledDecision,
    buy_and_hold_targets,
    flat_targets,
    momentum_targets,
    random_targets,
    sma_crossover_targets,
)
from .gate import GateParams
from .metrics import EvaluationInputError
from .report import check_identical_setup

__all__ = [
    "SETUP_KEYS",
    "SPEC_MUST_MATCH",
    "BENCHMARKS",
    "EvaluationParams",
    "BundleDecision",
    "check_bundle",
    "check_run_setups",
    "trading_setup",
    "backtest_split",
]

PREFIX = "evaluation"
#: Costs and capital: must be identical for every agent and benchmark.
SETUP_KEYS = ("initial_capital", "commission_bps", "slippage_bps", "borrow_bps_per_bar")
#: Environment keys a policy's spec must share with ``params:environment`` to be evaluated.
SPEC_MUST_MATCH = SETUP_KEYS + ("window", "positions", "continuous", "obs_position", "obs_unrealised",
                                "obs_bars_held")
#: Deterministic benchmark runs, in report order.
BENCHMARKS = ("buy_and_hold", "flat", "sma_crossover", "momentum")
RANDOM_RUN = "random"
LEDGER_COLUMNS = ["kind", "run", "seed", "date", "bar", "position", "shares", "cash", "equity", "fill_price",
                  "cost", "reward"]


def _err(key: str, message: str) -> EvaluationInputError:
    return EvaluationInputError(f"{PREFIX}.{key}: {message} (fix it in conf/base/parameters_evaluation.yml).")


def _pos_int(params: Mapping, key: str, minimum: int = 1) -> int:
    v = params.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise _err(f"benchmarks.{key}", f"must be an integer >= {minimum}, got {v!r}")
    return int(v)


@dataclass(frozen=True)
class EvaluationParams:
    """Validated ``params:evaluation`` (see conf/base/parameters_evaluation.yml)."""

    sma_fast: int
    sma_slow: int
    momentum_lookback: int
    long_short: bool
    random_seeds: int
    random_switch_prob: float
    gate: GateParams
    rank_metric: str
    rolling_window: int
    policy_filepath_pattern: str

    KEYS = ("benchmarks", "gate", "rank_metric", "rolling_window", "policy_filepath_pattern")
    BENCH_KEYS = ("sma_fast", "sma_slow", "momentum_lookback", "long_short", "random_seeds", "random_switch_prob")
    RANK_METRICS = ("sharpe", "sortino", "calmar", "total_return", "annual_return")

    @classmethod
    def from_params(cls, params: Mapping) -> EvaluationParams:
        if not isinstance(params, Mapping):
            raise EvaluationInputError(f"{PREFIX}: expected a mapping of parameters, got {type(params).__name__}.")
        unknown = sorted(set(params) - set(cls.KEYS))
        if unknown:
            raise _err(unknown[0], f"unknown parameter; allowed are {list(cls.KEYS)} (costs and capital are "
                                   "never set here: they come from params:environment)")
        missing = [k for k in cls.KEYS if k not in params]
        if missing:
            raise _err(missing[0], "missing parameter")
        b = params["benchmarks"]
        if not isinstance(b, Mapping):
            raise _err("benchmarks", f"must be a mapping, got {b!r}")
        unknown = sorted(set(b) - set(cls.BENCH_KEYS))
        if unknown:
            raise _err(f"benchmarks.{unknown[0]}", f"unknown parameter; allowed are {list(cls.BENCH_KEYS)}")
        fast, slow = _pos_int(b, "sma_fast"), _pos_int(b, "sma_slow", 2)
        if fast >= slow:
            raise _err("benchmarks.sma_fast", f"({fast}) must be smaller than evaluation.benchmarks.sma_slow ({slow})")
        n_random = _pos_int(b, "random_seeds", 100)
        p = b.get("random_switch_prob")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise _err("benchmarks.random_switch_prob", f"must be a probability in (0, 1], got {p!r}")
        if not isinstance(b.get("long_short"), bool):
            raise _err("benchmarks.long_short", f"must be true or false, got {b.get('long_short')!r}")
        rank = params["rank_metric"]
        if rank not in cls.RANK_METRICS:
            raise _err("rank_metric", f"unknown metric {rank!r}; choose one of {list(cls.RANK_METRICS)}")
        rw = params["rolling_window"]
        if isinstance(rw, bool) or not isinstance(rw, int) or rw < 2:
            raise _err("rolling_window", f"must be an integer >= 2 bars, got {rw!r}")
        pattern = params["policy_filepath_pattern"]
        if not isinstance(pattern, str) or "{agent}" not in pattern:
            raise _err("policy_filepath_pattern", f"must be a string containing '{{agent}}', got {pattern!r}")
        gate = GateParams.from_params(params["gate"], prefix=f"{PREFIX}.gate")
        return cls(fast, slow, _pos_int(b, "momentum_lookback"), b["long_short"], n_random, float(p), gate, rank,
                   rw, pattern)

    def to_dict(self) -> dict:
        return {
            "benchmarks": {k: getattr(self, k) for k in self.BENCH_KEYS},
            "gate": self.gate.to_dict(),
            "rank_metric": self.rank_metric,
            "rolling_window": self.rolling_window,
            "policy_filepath_pattern": self.policy_filepath_pattern,
        }


def artifact_name(agent: str, bundle) -> str:
    """``training.<agent>.policy (version <v>)``: how every error names a policy artifact."""
    version = getattr(bundle, "version", None)
    return f"training.{agent}.policy (version {version or 'unknown'})"


def trading_setup(config: EnvConfig) -> dict:
    """Costs and capital of a config: what must be identical for every run."""
    return {k: float(getattr(config, k)) for k in SETUP_KEYS}


def check_run_setups(configs: Mapping[str, EnvConfig]) -> dict:
    """Refuse unless every replay (agent or benchmark) used the same costs and capital.

    ``configs`` maps a run name to the ``EnvConfig`` its replay actually used
    (``BacktestResult.config``). Returns the common setup.
    """
    return check_identical_setup({name: trading_setup(c) for name, c in configs.items()})


def check_bundle(agent: str, bundle, config: EnvConfig, feature_names: Sequence[str]) -> None:
    """Refuse a policy artifact that was not trained for this environment and feature table."""
    name = artifact_name(agent, bundle)
    spec = getattr(bundle, "spec", None)
    if not isinstance(spec, Mapping):
        raise EvaluationInputError(
            f"{name}: expected a PolicyBundle with a spec, got {type(bundle).__name__}; "
            "run the training pipeline first.")
    names = list(spec.get("feature_names", []))
    if names != list(feature_names):
        raise EvaluationInputError(
            f"{name}: spec.feature_names {names} differ from the model-input feat_* columns "
            f"{list(feature_names)}; the policy was trained on other features. Rerun training after "
            "feature_engineering.")
    env_spec = spec.get("environment")
    if not isinstance(env_spec, Mapping):
        raise EvaluationInputError(
            f"{name}: spec.environment (the environment parameters used in training) is "
            "missing; evaluation cannot prove the policy saw the same costs and capital. Retrain it.")
    trained = EnvConfig.from_params(env_spec)
    for key in SPEC_MUST_MATCH:
        a, b = getattr(trained, key), getattr(config, key)
        if a != b:
            raise EvaluationInputError(
                f"{name}: trained with environment.{key}={a!r} but params:environment has "
                f"environment.{key}={b!r}. Agents and benchmarks are evaluated with identical costs, capital "
                "and observations; retrain the agent or restore conf/base/parameters_environment.yml.")
    if int(spec.get("window", -1)) != config.window or [float(p) for p in spec.get("positions", [])] != list(
            config.positions):
        raise EvaluationInputError(
            f"{name}: spec window/positions ({spec.get('window')}, {spec.get('positions')}) do not "
            f"match environment.window={config.window}, environment.positions={list(config.positions)}.")
    if not bundle.seeds:
        raise EvaluationInputError(f"{name}: the bundle holds no seed; retrain it.")


class BundleDecision:
    """``decide(obs)`` for ``env.replay`` over all seeds of one agent: lane i is seed i.

    Each seed's network is rebuilt from the JSON spec (``agents.build_policy``) and loaded
    from its state dict; actions are deterministic (argmax / greedy).
    """

    def __init__(self, agent: str, bundle, seeds: Sequence[int], device: str = "cpu"):
        from ..agents import build_policy  # local: agents pull in torch nets only when needed

        self.agent, self.seeds, self.policies = agent, list(seeds), []
        self.name = artifact_name(agent, bundle)
        self.obs_dim = int(bundle.spec.get("obs_dim", -1))
        for s in self.seeds:
            try:
                policy = build_policy(bundle.spec)
                policy.load_state_dict(bundle.state_dicts[s])
            except (ValueError, RuntimeError, KeyError, TypeError) as exc:
                raise EvaluationInputError(
                    f"{self.name}: seed {s} cannot be rebuilt from its spec and weights "
                    f"({' '.join(str(exc).split())}); the weights "
                    "do not fit spec.network/obs_dim, so the artifact is corrupt or from another version. "
                    "Retrain it.") from exc
            self.policies.append(policy.to(device).eval())

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.shape[1] != self.obs_dim:
            raise EvaluationInputError(
                f"{self.name}: spec.obs_dim={self.obs_dim} but the environment builds "
                f"observations of size {obs.shape[1]}; retrain the agent for this configuration.")
        obs = obs.float()
        with torch.no_grad():
            return torch.cat([p.act(obs[i:i + 1], deterministic=True).reshape(1) for i, p in
                              enumerate(self.policies)])


def _ledger(result, kind: str, run: str, seeds: Sequence[int]) -> pd.DataFrame:
    frame = pd.DataFrame(result)
    seed_of_lane = np.asarray(list(seeds), dtype=np.int64)
    frame.insert(0, "seed", seed_of_lane[frame.pop("lane").to_numpy()])
    frame.insert(0, "run", run)
    frame.insert(0, "kind", kind)
    return frame[LEDGER_COLUMNS]


def backtest_split(
    table: pd.DataFrame,
    environment: Mapping,
    evaluation: EvaluationParams,
    policies: Mapping[str, object],
    split: str = "test",
) -> pd.DataFrame:
    """Replay every agent × seed and every benchmark on ``table`` with one ``EnvConfig``.

    ``environment`` is ``params:environment``; ``policies`` maps agent name to
    ``PolicyBundle``. Returns the long ledger: ``kind`` (agent | benchmark | random),
    ``run`` (agent or benchmark name), ``seed``, then the ``env.replay`` columns. Benchmarks
    use closes of ``table`` only (causal schedules, warm-ups flat).
    """
    if not isinstance(table, pd.DataFrame) or "Close" not in table.columns:
        raise EvaluationInputError(
            f"model_input_{split}: expected the model-input table with a raw 'Close' column; "
            "run feature_engineering first.")
    # A replay always covers the full period (episode_length is a training setting).
    config = dataclasses.replace(EnvConfig.from_params(dict(environment)), episode_length=None)
    try:
        market = MarketArrays.from_frame(table)
    except ValueError as exc:
        raise EvaluationInputError(f"model_input_{split}: {exc}") from exc
    if len(table) <= config.window:
        raise EvaluationInputError(
            f"model_input_{split}: {len(table)} rows, but a replay needs more than environment.window="
            f"{config.window} rows.")
    # A benchmark that never leaves its warm-up is no benchmark: SMA(slow) first exists at bar
    # slow-1, momentum at bar lookback; one more bar is needed to fill the first signal.
    lookbacks = {"evaluation.benchmarks.sma_slow": evaluation.sma_slow,
                 "evaluation.benchmarks.momentum_lookback": evaluation.momentum_lookback + 1}
    key = max(lookbacks, key=lookbacks.get)
    if len(table) <= lookbacks[key]:
        value = getattr(evaluation, key.rsplit(".", 1)[1])
        raise EvaluationInputError(
            f"model_input_{split}: the {split} split has {len(table)} rows, not more than the longest benchmark "
            f"lookback ({key}={value} needs {lookbacks[key]} bars before its first signal), so that benchmark "
            f"would never trade. Lengthen the {split} split (conf/base/parameters_feature_engineering.yml) or "
            f"shorten {key} (conf/base/parameters_evaluation.yml).")
    positions = None if config.continuous else config.positions
    first = config.window - 1
    close = table["Close"].to_numpy(dtype=float)
    lo, hi = min(config.positions), max(config.positions)
    if hi < 1.0:
        raise EvaluationInputError(
            f"environment.positions={list(config.positions)}: buy-and-hold needs the position 1 (fully long).")
    long_short = evaluation.long_short
    if long_short and lo > -1.0:
        raise _err("benchmarks.long_short",
                   f"true needs the position -1 in environment.positions={list(config.positions)}")

    ledgers, configs = [], {}
    for agent in sorted(policies):
        bundle = policies[agent]
        check_bundle(agent, bundle, config, market.feature_names)
        seeds = bundle.seeds
        res = replay(market, config, BundleDecision(agent, bundle, seeds, str(config.resolve_device())),
                     num_envs=len(seeds))
        ledgers.append(_ledger(res, "agent", agent, seeds))
        configs[agent] = res.config

    schedules = {
        "buy_and_hold": buy_and_hold_targets(close),
        "flat": flat_targets(close),
        "sma_crossover": sma_crossover_targets(close, evaluation.sma_fast, evaluation.sma_slow, long_short),
        "momentum": momentum_targets(close, evaluation.momentum_lookback, long_short),
    }
    for name in BENCHMARKS:
        res = replay(market, config, ScheduledDecision(schedules[name], positions, first))
        ledgers.append(_ledger(res, "benchmark", name, [0]))
        configs[name] = res.config

    seeds = list(range(evaluation.random_seeds))
    targets = random_targets(len(close), config.positions, seeds, evaluation.random_switch_prob)
    res = replay(market, config, ScheduledDecision(targets, positions, first), num_envs=len(seeds))
    ledgers.append(_ledger(res, "random", RANDOM_RUN, seeds))
    configs[RANDOM_RUN] = res.config

    check_run_setups(configs)
    out = pd.concat(ledgers, ignore_index=True)
    out.insert(0, "split", split)
    out["run"] = out["run"].astype(str)
    out["kind"] = out["kind"].astype(str)
    out["split"] = out["split"].astype(str)
    start = out.groupby(["run", "seed"], sort=False)["equity"].first().to_numpy()
    if not np.all(start == config.initial_capital):
        raise EvaluationInputError("replay: a run did not start with environment.initial_capital; "
                                   "every agent and benchmark must start with the same capital.")
    return out
