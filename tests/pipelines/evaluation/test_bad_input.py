"""Bad input to the evaluation stage is a clear error, and costs are the same for agents and
benchmarks: policy artifacts (missing, corrupt, weights that do not fit their spec, features or
window that do not fit the data), splits shorter than a benchmark's lookback, unknown
parameter names, and a scripted agent that trades exactly like buy-and-hold."""

from __future__ import annotations

import copy
import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io.core import DatasetError, Version

from reinforce_strategy_creator.artifacts import ArtifactError, PolicyBundle
from reinforce_strategy_creator.datasets.policy_artifact import PolicyArtifactDataset
from reinforce_strategy_creator.env import EnvConfig, MarketArrays, replay
from reinforce_strategy_creator.evaluation.backtests import LEDGER_COLUMNS, EvaluationParams
from reinforce_strategy_creator.evaluation.benchmarks import ScheduledDecision
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.pipelines.evaluation import nodes
from tests.support.evaluation import make_bundle, prepare

VERSION = "2024-05-06T07.08.09.010Z"
TRADE_COLUMNS = ["date", "bar", "position", "shares", "cash", "equity", "fill_price", "cost"]


def _load_error(tmp_path, bundles, corrupt) -> Exception:
    """Save the ppo bundle as a versioned artifact, corrupt it, return what loading raises."""
    ds = PolicyArtifactDataset(filepath=str(tmp_path / "ppo_policy"), version=Version(None, VERSION))
    ds.save(copy.deepcopy(bundles["ppo"]))
    folder = tmp_path / "ppo_policy" / VERSION / "ppo_policy"
    corrupt(folder)
    with pytest.raises((ArtifactError, DatasetError)) as info:
        PolicyArtifactDataset(filepath=str(tmp_path / "ppo_policy"), version=Version(VERSION, None)).load()
    return info.value


def _drop_checksums(folder):
    spec = json.loads((folder / "spec.json").read_text())
    spec.pop("weights_sha256")
    (folder / "spec.json").write_text(json.dumps(spec))


@pytest.mark.parametrize(
    "corrupt, what",
    [
        (lambda f: (f / "spec.json").write_text("{not json"), "spec.json' has SHA-256"),
        (lambda f: (f / "spec.json").write_text("[1, 2]"), "spec.json' has SHA-256"),
        (lambda f: os.remove(f / "seed_1.safetensors"), "seed_1.safetensors"),
        (lambda f: (f / "seed_0.safetensors").write_bytes(b"\x00" * 64), "SHA-256"),
        (lambda f: (_drop_checksums(f), (f / "seed_0.safetensors").write_bytes(b"\x00" * 64)), "safetensors"),
        (lambda f: os.remove(f / "spec.json"), "spec.json' is missing"),
    ],
)
def test_corrupt_or_missing_artifact_names_artifact_and_version(tmp_path, bundles, corrupt, what):
    exc = _load_error(tmp_path, bundles, corrupt)
    message = str(exc)
    assert "ppo_policy" in message and VERSION in message and what in message
    assert isinstance(exc, ValueError) or isinstance(exc.__cause__, ArtifactError)


def test_no_saved_version_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="ppo_policy"):
        PolicyArtifactDataset(filepath=str(tmp_path / "ppo_policy"), version=Version(None, None)).load()


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def setup(model_inputs, env_params, _eval_params, bundles):
    return prepare(model_inputs, env_params, _eval_params, bundles)


def test_weights_that_do_not_fit_the_spec_name_artifact_and_version(model_inputs, env_params, bundles, setup):
    """A bundle whose safetensors were written by a network of another size: ``load_state_dict``
    fails inside the replay and must become an error naming the artifact and version."""
    wider = make_bundle("ppo", model_inputs, env_params, hidden=(32,))
    broken = PolicyBundle(
        spec=copy.deepcopy(bundles["ppo"].spec),
        state_dicts=wider.state_dicts,
        version="2024-02-02T00.00.00.000Z",
    )
    policies = {**bundles, "ppo": broken}
    with pytest.raises(
        ArtifactError, match=r"training\.ppo\.policy \(version 2024-02-02T00\.00\.00\.000Z\).*seed 0.*Retrain"
    ):
        nodes.backtest_validation(model_inputs["validation"], model_inputs["prices"], setup, **policies)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda spec: spec.update(feature_names=list(reversed(spec["feature_names"]))), "feature_names"),
        (lambda spec: spec.update(feature_names=spec["feature_names"][:-1]), "feature_names"),
        (lambda spec: spec.update(window=spec["window"] + 1), "window"),
        (
            lambda spec: spec.update(environment={**spec["environment"], "window": spec["window"] + 1}),
            "environment.window",
        ),
    ],
)
def test_features_or_window_that_do_not_fit_name_artifact_and_version(
    model_inputs, setup, bundles, mutate, match
):
    wrong = copy.deepcopy(bundles)
    mutate(wrong["a2c"].spec)
    version = re_escape(bundles["a2c"].version)
    with pytest.raises(EvaluationInputError, match=rf"training\.a2c\.policy \(version {version}\).*{match}"):
        nodes.backtest_test(model_inputs["test"], model_inputs["prices"], setup, **wrong)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize(
    "benchmarks, history_bars, match",
    [
        ({}, 0, r"evaluation\.benchmarks\.sma_slow=100 needs 100"),
        ({}, 83, r"evaluation\.benchmarks\.sma_slow=100 needs 100"),
        ({"momentum_lookback": 150}, 134, r"evaluation\.benchmarks\.momentum_lookback=150 needs 151"),
    ],
)
def test_history_shorter_than_a_benchmark_lookback_is_refused(
    model_inputs, env_params, eval_params, bundles, benchmarks, history_bars, match
):
    """Benchmarks read the closes before the window; when the price history has fewer than a
    benchmark needs at the first decision, it would sit flat for lack of data: refused."""
    eval_params["benchmarks"].update(benchmarks)
    setup = prepare(model_inputs, env_params, eval_params, bundles)
    table = model_inputs["validation"]
    prices = model_inputs["prices"]
    start = prices.index.get_loc(table.index[0])
    cut = prices.iloc[start - history_bars :]
    w = env_params["window"]
    with pytest.raises(
        EvaluationInputError,
        match=rf"model_input_validation: the first decision .* has "
        rf"{history_bars + w} closes.*{match}",
    ):
        nodes.backtest_validation(table, cut, setup, **bundles)


def test_history_just_long_enough_is_replayed_with_every_benchmark_trading_from_the_first_decision(
    model_inputs, env_params, eval_params, bundles
):
    """The boundary of the check above: exactly sma_slow closes up to the first decision."""
    setup = prepare(model_inputs, env_params, eval_params, bundles)
    table = model_inputs["validation"]
    prices = model_inputs["prices"]
    w = env_params["window"]
    start = prices.index.get_loc(table.index[0])
    cut = prices.iloc[start - (100 - w) :]
    ledger = nodes.backtest_validation(table, cut, setup, **bundles)
    assert ledger["date"].max() == table.index[-1]


def test_prices_that_disagree_with_the_model_input_are_refused(model_inputs, setup, bundles):
    prices = model_inputs["prices"].copy()
    prices.loc[model_inputs["validation"].index[5], "Close"] *= 1.01
    with pytest.raises(
        EvaluationInputError,
        match=r"model_input_validation: its Close column differs from "
        r"primary_prices",
    ):
        nodes.backtest_validation(model_inputs["validation"], prices, setup, **bundles)
    with pytest.raises(EvaluationInputError, match=r"is not in primary_prices"):
        nodes.backtest_validation(
            model_inputs["validation"],
            model_inputs["prices"].drop(model_inputs["validation"].index[20]),
            setup,
            **bundles,
        )


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("scaler_sha256", "0" * 64, "another feature_scaler"),
        ("feature_spec_sha256", "1" * 64, "another feature_engineering.features"),
        ("data_fingerprint", "2" * 64, "other data than this run's model_input_train"),
        ("scaler_sha256", None, "spec.scaler_sha256 is missing"),
    ],
)
def test_a_policy_with_foreign_provenance_is_refused_before_any_replay(
    model_inputs, env_params, _eval_params, bundles, field, value, match
):
    foreign = copy.deepcopy(bundles)
    if value is None:
        foreign["a2c"].spec.pop(field)
    else:
        foreign["a2c"].spec[field] = value
    with pytest.raises(
        EvaluationInputError, match=rf"training\.a2c\.policy \(version .*-a2c\): .*{match}"
    ) as info:
        prepare(model_inputs, env_params, _eval_params, foreign)
    if value is not None:  # both values are named
        assert value in str(info.value) and bundles["a2c"].spec[field] in str(info.value)


@pytest.mark.parametrize(
    "split, period, shift_days",
    [
        ("test", "train", 0),
        ("test", "validation", 0),
        ("validation", "train", 0),
        ("test", "train", 900),
    ],
)
def test_a_policy_whose_periods_overlap_the_scored_window_is_refused(
    model_inputs, setup, bundles, split, period, shift_days
):
    """A policy whose recorded training (or, for test, validation) period reaches into the bars
    it is asked to trade is refused: those returns are not out of sample for it."""
    leaky = copy.deepcopy(bundles)
    table = model_inputs[split]
    middle = table.index[len(table) // 2]  # a traded bar (the first W - 1 rows are only history)
    leaky["dqn"].spec[f"{period}_end"] = str((middle + pd.Timedelta(days=shift_days)).date())
    replay_split = nodes.backtest_test if split == "test" else nodes.backtest_validation
    with pytest.raises(
        EvaluationInputError,
        match=rf"training\.dqn\.policy .*its {period} period .* overlaps "
        rf"the {split} window",
    ):
        replay_split(table, model_inputs["prices"], setup, **leaky)


def test_a_validation_period_may_be_scored_on_validation(model_inputs, setup, bundles):
    """Scoring the validation window is what validation is for: only the training period counts
    there (the check above must not refuse every honest policy)."""
    ledger = nodes.backtest_validation(model_inputs["validation"], model_inputs["prices"], setup, **bundles)
    assert set(ledger["run"]) >= {"ppo", "a2c", "dqn"}


@pytest.mark.parametrize(
    "mutate, match",
    [
        (
            lambda p: p["gate"].update(min_sortino=1.0),
            r"evaluation\.gate\.min_sortino: unknown parameter; allowed .*'min_psr'",
        ),
        (lambda p: p["gate"].update(max_dd=0.2), r"evaluation\.gate\.max_dd: unknown parameter"),
        (
            lambda p: p.update(rank_metric="win_rate"),
            r"evaluation\.rank_metric: Input should be 'sharpe', .*\(got 'win_rate'\)",
        ),
        (
            lambda p: p.update(rank_metric="Sharpe"),
            r"evaluation\.rank_metric: Input should be 'sharpe', .*\(got 'Sharpe'\)",
        ),
        (lambda p: p.update(min_sharpe=0.5), r"evaluation\.min_sharpe: unknown parameter"),
        (
            lambda p: p["benchmarks"].update(sma_medium=50),
            r"evaluation\.benchmarks\.sma_medium: unknown parameter",
        ),
    ],
)
def test_unknown_metric_or_threshold_names_are_parameter_errors(
    model_inputs, env_params, eval_params, bundles, mutate, match
):
    mutate(eval_params)
    with pytest.raises(ParameterError, match=match) as info:
        prepare(model_inputs, env_params, eval_params, bundles)
    assert isinstance(info.value, ValueError)


def test_every_allowed_rank_metric_is_a_computed_metric(model_inputs, setup, bundles):
    """``rank_metric`` is checked against a fixed list: each name in it must be a column of the
    metric records, or a valid-looking parameter would fail only at champion selection."""
    records = nodes.metrics_validation(
        nodes.backtest_validation(model_inputs["validation"], model_inputs["prices"], setup, **bundles)
    )
    missing = [m for m in EvaluationParams.RANK_METRICS if m not in records.columns]
    assert not missing


def _always_long_dqn(model_inputs, env_params) -> PolicyBundle:
    """A scripted DQN whose Q-values always favour the fully-long action, whatever it observes."""
    bundle = make_bundle("dqn", model_inputs, env_params, seeds=(0,))
    long_action = [float(p) for p in env_params["positions"]].index(1.0)
    state = bundle.state_dicts[0]
    for head in ("adv_head", "value_head"):
        state[f"{head}.weight"] = torch.zeros_like(state[f"{head}.weight"])
        state[f"{head}.bias"] = torch.zeros_like(state[f"{head}.bias"])
    state["adv_head.bias"][long_action] = 10.0
    return dataclasses.replace(bundle, version="2024-03-03T00.00.00.000Z-scripted")


def test_agent_trading_like_buy_and_hold_gets_identical_fills_costs_and_equity(
    model_inputs, env_params, _eval_params
):
    """Through the evaluation node path, an agent whose every decision equals buy-and-hold's
    must produce the same ledger to the cent: same fills, same costs, same equity."""
    scripted = {"dqn": _always_long_dqn(model_inputs, env_params)}
    setup = prepare(model_inputs, env_params, _eval_params, scripted)
    ledger = nodes.backtest_validation(model_inputs["validation"], model_inputs["prices"], setup, **scripted)
    agent = ledger[ledger["run"] == "dqn"].sort_values("bar").reset_index(drop=True)
    bh = ledger[ledger["run"] == "buy_and_hold"].sort_values("bar").reset_index(drop=True)
    assert (agent["position"].iloc[1:] == 1.0).all()  # the script really is always long
    assert agent["cost"].sum() > 0  # there is a cost to compare
    pd.testing.assert_frame_equal(agent[TRADE_COLUMNS], bh[TRADE_COLUMNS])
    records = nodes.metrics_validation(ledger).set_index("agent")
    for col in ("total_costs", "final_equity", "total_return", "sharpe", "n_trades"):
        assert records.loc["dqn", col] == records.loc["buy_and_hold", col]


def test_an_agents_trades_replayed_as_a_benchmark_schedule_cost_the_same(
    model_inputs, setup, bundles, env_params
):
    """The other way round, with a trading agent: replaying a (random-weight, frequently
    trading) agent's realised positions through the benchmarks' ``ScheduledDecision`` gives the
    identical ledger, so no cost or fill rule differs between the two paths."""
    table = model_inputs["test"]
    ledger = nodes.backtest_test(table, model_inputs["prices"], setup, **bundles)
    agent = ledger[(ledger["run"] == "ppo") & (ledger["seed"] == 1)].sort_values("bar").reset_index(drop=True)
    assert agent["cost"].gt(0).sum() > 5  # it trades often
    config = EnvConfig.from_params(env_params).replace(episode_length=None)
    first = config.window - 1
    targets = np.zeros(len(table))
    # row k of the ledger holds the position decided at bar first + k - 1 and filled at the next open
    targets[first : first + len(agent) - 1] = agent["position"].to_numpy()[1:]
    res = replay(MarketArrays.from_frame(table), config, ScheduledDecision(targets, config.positions, first))
    as_benchmark = pd.DataFrame(res)
    pd.testing.assert_frame_equal(
        as_benchmark[TRADE_COLUMNS].reset_index(drop=True), agent[TRADE_COLUMNS], check_dtype=False
    )
    assert set(TRADE_COLUMNS) <= set(LEDGER_COLUMNS)


def test_history_rows_before_the_first_decision_may_overlap_training(model_inputs, setup, bundles):
    """The first W - 1 rows of a table only feed the first observation; a policy trained up to
    them has not seen a single traded return (a walk-forward window reads its history this way)."""
    table = model_inputs["validation"]
    window = int(setup["environment"]["window"])
    early = copy.deepcopy(bundles)
    early["dqn"].spec["train_end"] = str(table.index[window - 2].date())  # last history row
    ledger = nodes.backtest_validation(table, model_inputs["prices"], setup, **early)
    assert "dqn" in set(ledger["run"])
    early["dqn"].spec["train_end"] = str(table.index[window - 1].date())  # the first decision bar
    with pytest.raises(EvaluationInputError, match="overlaps the validation window"):
        nodes.backtest_validation(table, model_inputs["prices"], setup, **early)
