"""Honesty properties of the evaluation nodes on real S&P 500 data."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.env import EnvConfig
from reinforce_strategy_creator.evaluation.backtests import check_run_setups
from reinforce_strategy_creator.evaluation.benchmarks import random_targets
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError, evaluate_backtest
from reinforce_strategy_creator.pipelines.evaluation import nodes



@pytest.fixture(scope="module")
def setup(env_params, _eval_params, bundles):
    return nodes.prepare_setup(env_params, _eval_params, **bundles)


@pytest.fixture(scope="module")
def test_ledger(model_inputs, setup, bundles):
    return nodes.backtest_test(model_inputs["test"], setup, **bundles)


def test_buy_and_hold_return_is_price_change_less_costs(test_ledger, model_inputs, env_params):
    table = model_inputs["test"]
    bh = test_ledger[test_ledger["run"] == "buy_and_hold"].sort_values("bar").reset_index(drop=True)
    w = env_params["window"]
    first = bh.iloc[1]  # row 0 is the pre-trade start row at decision bar W-1
    ref_col = "Open" if env_params.get("fill_price", EnvConfig.fill_price) == "next_open" else "Close"
    open_, last_close = table[ref_col].iloc[w], table["Close"].iloc[-1]
    assert bh["date"].iloc[1] == table.index[w] and bh["date"].iloc[-1] == table.index[-1]
    # the first fill and its costs, recomputed from params:environment (not read from the env)
    slip, comm = env_params["slippage_bps"] / 1e4, env_params["commission_bps"] / 1e4
    fill = open_ * (1 + slip)
    assert first["fill_price"] == pytest.approx(fill, rel=1e-12)
    shares = first["shares"]
    cost = shares * (fill - open_) + shares * fill * comm
    assert first["cost"] == pytest.approx(cost, rel=1e-9)
    assert shares * fill + shares * fill * comm == pytest.approx(env_params["initial_capital"], rel=1e-6)
    assert (bh["shares"].iloc[1:] == shares).all() and bh["cost"].iloc[2:].eq(0).all()  # held, no more trading
    rec = nodes.metrics_test(test_ledger)
    m = rec[rec["agent"] == "buy_and_hold"].iloc[0]
    expected_pnl = shares * (last_close - open_) - cost
    assert m["final_equity"] - env_params["initial_capital"] == pytest.approx(expected_pnl, abs=0.01)
    assert m["total_return"] == pytest.approx(expected_pnl / env_params["initial_capital"], abs=1e-9)


def test_test_ledgers_stay_inside_the_test_split(test_ledger, model_inputs):
    test = model_inputs["test"]
    dates = pd.DatetimeIndex(test_ledger["date"])
    assert dates.min() >= test.index[0] and dates.max() <= test.index[-1]
    assert dates.min() > model_inputs["validation"].index[-1] > model_inputs["train"].index[-1]


def test_test_metrics_depend_on_the_test_table_only(model_inputs, setup, bundles, test_ledger):
    """The first test observation is built from test rows only: dropping every row before the
    test split (there are none in the table) or perturbing rows after the end changes nothing,
    while perturbing test rows does change test metrics (so the check can fail)."""
    base = nodes.metrics_test(test_ledger)
    test = model_inputs["test"]
    # appending post-test rows must not change metrics of the bars before them
    extra = test.iloc[-5:].copy()
    extra.index = extra.index + pd.Timedelta(days=400)
    trimmed = nodes.backtest_test(pd.concat([test, extra]), setup, **bundles)
    assert len(trimmed) > len(test_ledger)  # the extra bars are replayed ...
    trimmed = trimmed[pd.DatetimeIndex(trimmed["date"]) <= test.index[-1]]
    pd.testing.assert_frame_equal(trimmed.reset_index(drop=True), test_ledger.reset_index(drop=True))  # ... causally
    shifted = test.copy()
    shifted.iloc[len(shifted) // 2:, shifted.columns.get_loc("Close")] *= 1.05
    moved = nodes.metrics_test(nodes.backtest_test(shifted, setup, **bundles))
    assert not np.allclose(moved["total_return"], base["total_return"])


def _perturbed_test_records(records: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = records.copy()
    for col in ("sharpe", "max_drawdown", "psr", "total_return", "final_equity"):
        out[col] = rng.permutation(out[col].to_numpy()) * rng.uniform(-3, 3)
    return out


def test_champion_is_chosen_on_validation_only(model_inputs, setup, bundles, test_ledger, eval_params):
    val = nodes.metrics_validation(nodes.backtest_validation(model_inputs["validation"], setup, **bundles))
    test = nodes.metrics_test(test_ledger)
    for gate in ({}, {"min_sharpe": -100.0, "max_drawdown": 1.0, "must_beat_buy_and_hold": False, "min_psr": 0.0}):
        s = {**setup, "evaluation": {**setup["evaluation"], "gate": {**setup["evaluation"]["gate"], **gate}}}
        champion, verdict, _ = nodes.select_champion(val, test, s)
        agents = val[val["kind"] == "agent"]
        if gate:  # everything passes: the champion is the best validation Sharpe
            best = agents.sort_values(["sharpe", "agent", "seed"], ascending=[False, True, True]).iloc[0]
            assert verdict["passed"] and champion["verdict_passed"]
            assert (champion["agent"], champion["seed"]) == (best["agent"], best["seed"])
        for k in range(3):
            other, other_verdict, _ = nodes.select_champion(val, _perturbed_test_records(test, k), s)
            assert (other["agent"], other["seed"]) == (champion["agent"], champion["seed"])
            assert other["validation_metrics"] == champion["validation_metrics"]
            assert other_verdict["rules"] == verdict["rules"]
        # its test record is reported as it is
        row = test[(test["agent"] == champion["agent"]) & (test["seed"] == champion["seed"])].iloc[0]
        assert champion["test_metrics"]["sharpe"] == pytest.approx(row["sharpe"])


def test_nothing_passes_names_best_on_validation_but_not_promotable(model_inputs, setup, bundles, test_ledger):
    val = nodes.metrics_validation(nodes.backtest_validation(model_inputs["validation"], setup, **bundles))
    s = {**setup, "evaluation": {**setup["evaluation"], "gate": {**setup["evaluation"]["gate"], "min_sharpe": 50.0}}}
    champion, verdict, selection = nodes.select_champion(val, nodes.metrics_test(test_ledger), s)
    agents = val[val["kind"] == "agent"]
    best = agents.sort_values(["sharpe", "agent", "seed"], ascending=[False, True, True]).iloc[0]
    assert (champion["agent"], champion["seed"]) == (best["agent"], int(best["seed"]))
    assert champion["verdict_passed"] is False and verdict["passed"] is False
    assert champion["n_passed"] == 0 and "must not be promoted" in champion["reason"]
    assert verdict["rules"]["min_sharpe"]["passed"] is False
    assert not any(c["passed"] for c in verdict["candidates"])


@pytest.mark.parametrize("key, value", [("commission_bps", 0.0), ("slippage_bps", 0.0),
                                         ("initial_capital", 1_000_000.0), ("borrow_bps_per_bar", 1.0)])
def test_tampered_costs_or_capital_are_refused(model_inputs, env_params, _eval_params, bundles, key, value):
    tampered = copy.deepcopy(bundles)
    spec_env = dict(tampered["a2c"].spec["environment"])
    spec_env[key] = value
    tampered["a2c"].spec["environment"] = spec_env
    setup = nodes.prepare_setup(env_params, _eval_params, **tampered)
    with pytest.raises(EvaluationInputError, match=rf"training\.a2c\.policy.*environment\.{key}"):
        nodes.backtest_validation(model_inputs["validation"], setup, **tampered)


def test_runs_with_different_setups_are_refused(env_params):
    cfg = EnvConfig.from_params(env_params)
    other = EnvConfig.from_params({**env_params, "commission_bps": env_params["commission_bps"] + 1})
    assert check_run_setups({"ppo": cfg, "buy_and_hold": cfg})["commission_bps"] == env_params["commission_bps"]
    with pytest.raises(ValueError, match="commission_bps"):
        check_run_setups({"ppo": cfg, "buy_and_hold": other})


def test_evaluation_params_cannot_set_costs(env_params, _eval_params, bundles):
    bad = {**_eval_params, "commission_bps": 0.0}
    with pytest.raises(ValueError, match=r"evaluation\.commission_bps.*params:environment"):
        nodes.prepare_setup(env_params, bad, **bundles)


@pytest.mark.parametrize("mutate, match", [
    (lambda p: p["gate"].pop("min_psr"), r"evaluation\.gate.*min_psr"),
    (lambda p: p["benchmarks"].update(random_seeds=50), r"evaluation\.benchmarks\.random_seeds"),
    (lambda p: p["benchmarks"].update(sma_fast=200), r"evaluation\.benchmarks\.sma_fast"),
    (lambda p: p.update(rank_metric="luck"), r"evaluation\.rank_metric"),
])
def test_bad_parameters_name_the_key(env_params, eval_params, bundles, mutate, match):
    mutate(eval_params)
    with pytest.raises(ValueError, match=match):
        nodes.prepare_setup(env_params, eval_params, **bundles)


def test_feature_mismatch_is_refused(model_inputs, env_params, _eval_params, bundles):
    wrong = copy.deepcopy(bundles)
    wrong["ppo"].spec["feature_names"] = list(reversed(wrong["ppo"].spec["feature_names"]))
    setup = nodes.prepare_setup(env_params, _eval_params, **wrong)
    with pytest.raises(EvaluationInputError, match=r"training\.ppo\.policy.*feature_names"):
        nodes.backtest_validation(model_inputs["validation"], setup, **wrong)


def test_agents_are_replayed_deterministically(model_inputs, setup, bundles, test_ledger):
    again = nodes.backtest_test(model_inputs["test"], setup, **bundles)
    pd.testing.assert_frame_equal(test_ledger, again)
    agents = test_ledger[test_ledger["kind"] == "agent"]
    # the fixtures' random policies do trade, so the metrics below are not about idle accounts
    assert agents.groupby(["run", "seed"])["shares"].nunique().min() > 1


@given(n=st.integers(2, 300), extra=st.integers(1, 50), p=st.floats(0.01, 1.0), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=50, deadline=None)
def test_random_policy_is_prefix_stable(n, extra, p, seed):
    """A random decision at bar t does not depend on how many bars follow."""
    short = random_targets(n, (0.0, 1.0), [seed, seed + 1], p)
    long = random_targets(n + extra, (0.0, 1.0), [seed, seed + 1], p)
    np.testing.assert_array_equal(short, long[:, :n])
