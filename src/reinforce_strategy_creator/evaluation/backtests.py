"""Replay trained policies and benchmarks on one data split, through the environment core.

What: given a model-input table (validation or test), the environment parameters and the
trained ``PolicyBundle`` of every agent, replay

* every seed of every agent and its seed ensemble (``evaluation.ensembles``; all batched as
  lanes of ONE ``env.replay``), acting deterministically;
* the benchmarks buy-and-hold, flat, SMA crossover and time-series momentum;
* a seeded random policy over N >= 100 seeds (one batched replay, one lane per seed),

all through the same ``env.replay`` with ONE ``EnvConfig`` built from
``params:environment``, so fills, costs and starting capital are identical for agents and
benchmarks. The result is one long ledger table (one row per run, seed and bar) that the
metrics step reads and that is persisted as Parquet.

Benchmarks see the same history as agents: their signals (SMA crossover, momentum) are
computed on the closes of ``primary_prices`` up to each bar, including the bars before the
window, exactly as the agents' features read the bars before the window. So a benchmark holds
its position from the first decision, instead of sitting flat while it warms up.

Honesty checks that refuse to run (``EvaluationInputError``, a ``ValueError``):

* a policy whose spec says it was trained with other costs, capital, window, positions or
  observation switches than ``params:environment`` (a stale or foreign artifact);
* a policy whose feature names differ from the model-input table's ``feat_*`` columns;
* a policy whose provenance differs from the run's (``check_provenance``): another scaler,
  another feature specification, other training data, or a training (or, for an
  out-of-sample window, validation) period that overlaps the window it is asked to score;
* replays that did not all use the same costs and capital (``check_run_setups``).

Why here and not in the env: the env replays one ``decide`` callable; choosing which runs
to replay, validating artifacts against the configuration and laying out the ledger is the
evaluation stage's job. Importable without Kedro.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..agents.ensemble import PolicyLanes
from ..candidates import ENSEMBLE_SEED
from ..env import EnvConfig, MarketArrays, replay
from ..features import data_fingerprint, feature_spec_sha256, scaler_sha256
from ..params.base import ParameterError
from ..params.evaluation import EvaluationParams
from .benchmarks import BENCHMARKS, ScheduledDecision, position_targets, single_asset_benchmarks
from .metrics import EvaluationInputError
from .report import check_identical_setup
from .strategies import Prices

__all__ = [
    "SETUP_KEYS",
    "SPEC_MUST_MATCH",
    "BENCHMARKS",
    "EvaluationParams",
    "BundleDecision",
    "check_bundle",
    "check_periods",
    "check_provenance",
    "check_run_setups",
    "history_closes",
    "run_provenance",
    "trading_setup",
    "backtest_split",
]

#: Costs and capital: must be identical for every agent and benchmark.
SETUP_KEYS = ("initial_capital", "commission_bps", "slippage_bps", "borrow_bps_per_bar")
#: Environment keys a policy's spec must share with ``params:environment`` to be evaluated.
SPEC_MUST_MATCH = SETUP_KEYS + (
    "fill_price",
    "window",
    "positions",
    "continuous",
    "obs_position",
    "obs_unrealised",
    "obs_bars_held",
)
LEDGER_COLUMNS = [
    "kind",
    "run",
    "seed",
    "date",
    "bar",
    "position",
    "shares",
    "cash",
    "equity",
    "fill_price",
    "cost",
    "reward",
]


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


#: Spec fields that tie a policy to the data and features it was trained on.
PROVENANCE_FIELDS = ("scaler_sha256", "feature_spec_sha256", "data_fingerprint")
#: Which recorded periods of a policy may not overlap a window, by the window's role.
PERIODS_THAT_MUST_NOT_OVERLAP = {"validation": ("train",), "test": ("train", "validation")}


def run_provenance(feature_scaler: Mapping, feature_spec: Mapping, model_input_train: pd.DataFrame) -> dict:
    """The run's own fingerprints, which every evaluated policy must carry in its spec."""
    return {
        "scaler_sha256": scaler_sha256(feature_scaler),
        "feature_spec_sha256": feature_spec_sha256(feature_spec),
        "data_fingerprint": data_fingerprint(model_input_train),
    }


_PROVENANCE_FIX = {
    "scaler_sha256": "it was trained on features scaled by another feature_scaler",
    "feature_spec_sha256": "it was trained on features computed with another feature_engineering.features",
    "data_fingerprint": "it was trained on other data than this run's model_input_train",
}


def check_provenance(agent: str, bundle, provenance: Mapping[str, str]) -> None:
    """Refuse a policy whose scaler, feature specification or training data differ from the run's."""
    name = artifact_name(agent, bundle)
    spec = bundle.spec
    for key in PROVENANCE_FIELDS:
        recorded, current = spec.get(key), provenance[key]
        if recorded is None:
            raise EvaluationInputError(
                f"{name}: spec.{key} is missing, so evaluation cannot prove what the policy was trained on; "
                "it was written by an older version. Retrain it (kedro run --pipelines training)."
            )
        if recorded != current:
            raise EvaluationInputError(
                f"{name}: spec.{key}={recorded} but this run's is {current}: {_PROVENANCE_FIX[key]}. "
                "Scoring it here would mix two experiments; retrain it on this run's data and features "
                "(kedro run --pipelines training), or restore the parameters and data it was trained with."
            )


def check_periods(agent: str, bundle, window: tuple[pd.Timestamp, pd.Timestamp], role: str) -> None:
    """Refuse a policy whose recorded training (and, for a test window, validation) period
    overlaps ``window`` (first and last bar of the table to score)."""
    name = artifact_name(agent, bundle)
    start, end = window
    for period in PERIODS_THAT_MUST_NOT_OVERLAP[role]:
        keys = (f"{period}_start", f"{period}_end")
        values = [bundle.spec.get(k) for k in keys]
        if any(v is None for v in values):
            raise EvaluationInputError(
                f"{name}: spec.{keys[0]}/{keys[1]} missing; evaluation cannot prove the policy never saw the "
                f"{role} window. Retrain it (kedro run --pipelines training)."
            )
        p_start, p_end = (pd.Timestamp(v) for v in values)
        if p_start <= end and start <= p_end:
            raise EvaluationInputError(
                f"{name}: its {period} period {p_start.date()} .. {p_end.date()} (spec.{keys[0]}, "
                f"spec.{keys[1]}) "
                f"overlaps the {role} window {start.date()} .. {end.date()} it is asked to score: those "
                "returns "
                "are not out of sample for it. Retrain it with feature_engineering.splits that end before "
                "the "
                f"{role} window, or evaluate it on a later window."
            )


def check_bundle(agent: str, bundle, config: EnvConfig, feature_names: Sequence[str]) -> None:
    """Refuse a policy artifact that was not trained for this environment and feature table."""
    name = artifact_name(agent, bundle)
    spec = getattr(bundle, "spec", None)
    if not isinstance(spec, Mapping):
        raise EvaluationInputError(
            f"{name}: expected a PolicyBundle with a spec, got {type(bundle).__name__}; "
            "run the training pipeline first."
        )
    names = list(spec.get("feature_names", []))
    if names != list(feature_names):
        raise EvaluationInputError(
            f"{name}: spec.feature_names {names} differ from the model-input feat_* columns "
            f"{list(feature_names)}; the policy was trained on other features. Rerun training after "
            "feature_engineering."
        )
    env_spec = spec.get("environment")
    if not isinstance(env_spec, Mapping):
        raise EvaluationInputError(
            f"{name}: spec.environment (the environment parameters used in training) is "
            "missing; evaluation cannot prove the policy saw the same costs and capital. Retrain it."
        )
    trained = EnvConfig.from_params(env_spec)
    for key in SPEC_MUST_MATCH:
        a, b = getattr(trained, key), getattr(config, key)
        if a != b:
            raise EvaluationInputError(
                f"{name}: trained with environment.{key}={a!r} but params:environment has "
                f"environment.{key}={b!r}. Agents and benchmarks are evaluated with identical costs, capital "
                "and observations; retrain the agent or restore conf/base/parameters_environment.yml."
            )
    if int(spec.get("window", -1)) != config.window or [float(p) for p in spec.get("positions", [])] != list(
        config.positions
    ):
        raise EvaluationInputError(
            f"{name}: spec window/positions ({spec.get('window')}, {spec.get('positions')}) do not "
            f"match environment.window={config.window}, environment.positions={list(config.positions)}."
        )
    if not bundle.seeds:
        raise EvaluationInputError(f"{name}: the bundle holds no seed; retrain it.")


class BundleDecision(PolicyLanes):
    """``decide(obs)`` for ``env.replay`` over all seeds of one agent: lane i is seed i
    (``PolicyBundle.load_policy`` per seed); actions are deterministic (argmax / greedy)."""

    def __init__(self, agent: str, bundle, seeds: Sequence[int], device: str = "cpu"):
        self.agent, self.seeds = agent, list(seeds)
        self.name = artifact_name(agent, bundle)
        self.obs_dim = int(bundle.spec.get("obs_dim", -1))
        super().__init__([bundle.load_policy(s, device, name=self.name) for s in self.seeds])

    def __call__(self, obs: torch.Tensor, bar: int | None = None) -> torch.Tensor:
        if obs.shape[1] != self.obs_dim:
            raise EvaluationInputError(
                f"{self.name}: spec.obs_dim={self.obs_dim} but the environment builds "
                f"observations of size {obs.shape[1]}; retrain the agent for this configuration."
            )
        return super().__call__(obs, bar)


def _ledger(result, kind: str, run: str, seeds: Sequence[int]) -> pd.DataFrame:
    """The replay's lanes as ledger rows; an agent's ensemble lane is ``kind="ensemble"``."""
    frame = pd.DataFrame(result)
    seed_of_lane = np.asarray(list(seeds), dtype=np.int64)
    frame.insert(0, "seed", seed_of_lane[frame.pop("lane").to_numpy()])
    frame.insert(0, "run", run)
    frame.insert(
        0, "kind", np.where(frame["seed"] == ENSEMBLE_SEED, "ensemble", kind) if kind == "agent" else kind
    )
    return frame[LEDGER_COLUMNS]


def history_closes(table: pd.DataFrame, history: pd.DataFrame, split: str) -> Prices:
    """Closes of ``history`` (``primary_prices``) up to the window's last bar, ``start`` the
    position of the window's first bar in them. The window's closes must be the history's."""
    if (
        not isinstance(history, pd.DataFrame)
        or "Close" not in history.columns
        or not isinstance(history.index, pd.DatetimeIndex)
    ):
        raise EvaluationInputError(
            "primary_prices: expected the price table (DatetimeIndex, Close column) that benchmarks read "
            "their history from; run data_ingestion first."
        )
    missing = table.index.difference(history.index)
    if len(missing):
        raise EvaluationInputError(
            f"model_input_{split}: bar {missing[0].date()} is not in primary_prices ({len(missing)} such "
            "bars); "
            "the model input and the prices come from different runs. Re-run feature_engineering."
        )
    past = history.loc[: table.index[-1], "Close"]
    first = int(past.index.get_loc(table.index[0]))
    window = past.to_numpy(dtype=float)[first:]
    if len(window) != len(table) or not np.allclose(
        window, table["Close"].to_numpy(dtype=float), rtol=1e-12, atol=0.0
    ):
        raise EvaluationInputError(
            f"model_input_{split}: its Close column differs from primary_prices on the same dates; the "
            "model input "
            "and the prices come from different runs. Re-run feature_engineering."
        )
    return Prices(past.to_numpy(dtype=float), past.index, ("Close",), start=first)


def backtest_split(
    table: pd.DataFrame,
    environment: EnvConfig,
    evaluation: EvaluationParams,
    policies: Mapping[str, object],
    split: str = "test",
    *,
    history: pd.DataFrame,
    provenance: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Replay every agent × seed and every benchmark on ``table`` with one ``EnvConfig``.

    ``environment`` is the run's validated ``environment`` block; ``policies`` maps agent name to
    ``PolicyBundle``. ``history`` is ``primary_prices``: benchmarks compute their causal
    schedules on its closes up to each bar, bars before the window included, like the agents'
    features. ``provenance`` (``run_provenance``) makes every policy prove it was trained on
    this run's scaler, features and data; each policy's training (and for ``split="test"``,
    validation) period must not overlap the window. Returns the long ledger: ``kind`` (agent |
    benchmark | random), ``run`` (agent or benchmark name), ``seed``, then the ``env.replay``
    columns.
    """
    # A replay always covers the full period (episode_length is a training setting).
    config = environment.replace(episode_length=None)
    market = _window_market(table, config, split)
    past = history_closes(table, history, split)
    _check_benchmarks(evaluation.benchmarks, config, table, past.start, split)
    runs = [
        *_replay_agents(
            market,
            config,
            policies,
            (table.index[config.window - 1], table.index[-1]),  # the bars it trades: from the first decision
            split,
            provenance,
            evaluation.ensembles,
        ),
        *replay_benchmarks(market, config, evaluation.benchmarks, past),
    ]
    return _long_ledger(runs, config, split)


def _window_market(table: pd.DataFrame, config: EnvConfig, split: str) -> MarketArrays:
    """The window as env arrays; it must hold a raw Close and more rows than the env window."""
    if not isinstance(table, pd.DataFrame) or "Close" not in table.columns:
        raise EvaluationInputError(
            f"model_input_{split}: expected the model-input table with a raw 'Close' column; "
            "run feature_engineering first."
        )
    try:
        market = MarketArrays.from_frame(table)
    except ValueError as exc:
        raise EvaluationInputError(f"model_input_{split}: {exc}") from exc
    if len(table) <= config.window:
        raise EvaluationInputError(
            f"model_input_{split}: {len(table)} rows, but a replay needs more than environment.window="
            f"{config.window} rows."
        )
    return market


def _check_benchmarks(bench, config: EnvConfig, table: pd.DataFrame, offset: int, split: str) -> None:
    """Every benchmark has its signal at the first decision and the positions it needs.

    SMA(slow) needs ``slow`` closes up to the first decision bar, momentum ``lookback + 1``;
    the closes before the window count, as for the agents' features.
    """
    first = config.window - 1
    available = offset + first + 1  # closes up to and including the first decision bar
    needs = {"sma_slow": bench.sma_slow, "momentum_lookback": bench.momentum_lookback + 1}
    for name, need in needs.items():
        if available < need:
            key = f"evaluation.benchmarks.{name}"
            raise EvaluationInputError(
                f"model_input_{split}: the first decision of the {split} window "
                f"({table.index[first].date()}) has "
                f"{available} closes of history up to it, but {key}={getattr(bench, name)} needs {need}, so "
                "that "
                f"benchmark would sit flat for lack of data while the agents trade. Start the {split} window "
                "later (conf/base/parameters_feature_engineering.yml), use a longer price history, or "
                "shorten "
                f"{key} (conf/base/parameters_evaluation.yml)."
            )
    lo, hi = min(config.positions), max(config.positions)
    if hi < 1.0:
        raise EvaluationInputError(
            f"environment.positions={list(config.positions)}: buy-and-hold needs the position 1 (fully long)."
        )
    if bench.long_short and lo > -1.0:
        raise ParameterError(
            f"evaluation.benchmarks.long_short: true needs the position -1 in environment.positions="
            f"{list(config.positions)}; add -1 there or set long_short: false."
        )


def _replay_agents(market, config, policies, window, split, provenance, ensembles: bool):
    """Each agent's seeds (and, with ``ensembles``, their seed ensemble as one more lane) in one
    batched replay, after its bundle proves where it came from."""
    for agent in sorted(policies):
        bundle = policies[agent]
        check_bundle(agent, bundle, config, market.feature_names)
        if provenance is not None:
            check_provenance(agent, bundle, provenance)
        check_periods(agent, bundle, window, "test" if split == "test" else "validation")
        seeds = bundle.seeds + ([ENSEMBLE_SEED] if ensembles and len(bundle.seeds) > 1 else [])
        decision = BundleDecision(agent, bundle, seeds, str(config.resolve_device()))
        yield "agent", agent, seeds, replay(market, config, decision, num_envs=len(seeds))


def replay_benchmarks(market, config, bench, past: Prices):
    """The benchmarks (``benchmarks.single_asset_benchmarks``) with the agents' costs, capital
    and first decision, each in one ``env.replay`` (a lane per seed).

    ``past`` are the closes of the whole history up to the market's last bar, ``past.start`` the
    row of the market's first bar in them: the signals read the bars before the window.
    Yields ``(kind, name, seeds, BacktestResult)``."""
    positions = None if config.continuous else config.positions
    first = past.start + config.window - 1
    for strategy in single_asset_benchmarks(bench, config.positions):
        targets = position_targets(strategy.schedule(past, first))[:, past.start :]
        decision = ScheduledDecision(targets, positions, config.window - 1)
        result = replay(market, config, decision, num_envs=strategy.lanes)
        yield strategy.kind, strategy.name, list(strategy.seeds), result


def _long_ledger(runs, config: EnvConfig, split: str) -> pd.DataFrame:
    """One long table of every run; all ran under one setup and started with the same capital."""
    runs = list(runs)
    check_run_setups({name: res.config for _, name, _, res in runs})
    out = pd.concat([_ledger(res, kind, name, seeds) for kind, name, seeds, res in runs], ignore_index=True)
    out.insert(0, "split", split)
    for column in ("run", "kind", "split"):
        out[column] = out[column].astype(str)
    start = out.groupby(["run", "seed"], sort=False)["equity"].first().to_numpy()
    if not np.all(start == config.initial_capital):
        raise EvaluationInputError(
            "replay: a run did not start with environment.initial_capital; "
            "every agent and benchmark must start with the same capital."
        )
    return out
