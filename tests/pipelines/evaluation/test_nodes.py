"""Honesty properties of the evaluation nodes on real S&P 500 data."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.agents.ensemble import ENSEMBLE_SEED
from reinforce_strategy_creator.env import EnvConfig
from reinforce_strategy_creator.evaluation.backtests import check_run_setups
from reinforce_strategy_creator.evaluation.benchmarks import random_targets
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError
from reinforce_strategy_creator.pipelines.evaluation import nodes
from tests.support.evaluation import make_history, prepare


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def setup(model_inputs, env_params, _eval_params, bundles):
    return prepare(model_inputs, env_params, _eval_params, bundles)


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def test_ledger(model_inputs, setup, bundles):
    return nodes.backtest_test(model_inputs["test"], model_inputs["prices"], setup, **bundles)


def test_buy_and_hold_return_is_price_change_less_costs(test_ledger, model_inputs, env_params):
    table = model_inputs["test"]
    bh = test_ledger[test_ledger["run"] == "buy_and_hold"].sort_values("bar").reset_index(drop=True)
    w = env_params["window"]
    first = bh.iloc[1]  # row 0 is the pre-trade start row at decision bar W-1
    ref_col = "Open" if EnvConfig.from_params(env_params).fill_price == "next_open" else "Close"
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
    assert (bh["shares"].iloc[1:] == shares).all() and bh["cost"].iloc[2:].eq(
        0
    ).all()  # held, no more trading
    rec = nodes.metrics_test(test_ledger)
    m = rec[rec["agent"] == "buy_and_hold"].iloc[0]
    expected_pnl = shares * (last_close - open_) - cost
    assert m["final_equity"] - env_params["initial_capital"] == pytest.approx(expected_pnl, abs=0.01)
    assert m["total_return"] == pytest.approx(expected_pnl / env_params["initial_capital"], abs=1e-9)


def test_benchmarks_read_the_history_before_the_window_and_nothing_after_it(
    test_ledger, model_inputs, setup, bundles, eval_params
):
    """Benchmarks compute their signals on primary_prices up to each bar: the SMA crossover and
    momentum hold the position their rule gives at the very first decision (computed here
    independently with pandas), changing prices after the window changes nothing, and changing
    prices before the window does change them (so this test can fail)."""
    test, prices = model_inputs["test"], model_inputs["prices"]
    first = test.index[setup["environment"]["window"] - 1]
    b = eval_params["benchmarks"]
    close = prices["Close"].loc[:first]
    sma_long = close.rolling(b["sma_fast"]).mean().iloc[-1] > close.rolling(b["sma_slow"]).mean().iloc[-1]
    mom_long = close.iloc[-1] / close.iloc[-1 - b["momentum_lookback"]] - 1 > 0
    for run, long_ in (("sma_crossover", sma_long), ("momentum", mom_long)):
        lane = test_ledger[test_ledger["run"] == run].sort_values("bar")
        assert lane["position"].iloc[1] == (1.0 if long_ else 0.0), run  # filled from the first decision
    # on the validation window (mid-2013, a rising market) both rules are long from the first
    # decision: no benchmark sits flat for lack of data while the agents trade
    val = model_inputs["validation"]
    ledger = nodes.backtest_validation(val, prices, setup, **bundles)
    for run in ("sma_crossover", "momentum"):
        assert ledger[ledger["run"] == run].sort_values("bar")["position"].iloc[1] == 1.0, run
    after = prices.copy()
    after.loc[after.index > test.index[-1], ["Open", "High", "Low", "Close"]] *= 1.5
    pd.testing.assert_frame_equal(nodes.backtest_test(test, after, setup, **bundles), test_ledger)
    before = prices.copy()
    # a long fall that ends far above the test window's prices: both rules are out at the start
    before.loc[before.index < test.index[0], "Close"] = np.linspace(
        1e6, 1e5, int((before.index < test.index[0]).sum())
    )
    moved = nodes.backtest_test(test, before, setup, **bundles)
    for run in ("sma_crossover", "momentum"):
        a = moved[moved["run"] == run]["position"].to_numpy()
        b_ = test_ledger[test_ledger["run"] == run]["position"].to_numpy()
        assert not np.array_equal(a, b_), run
    agents = moved[moved["kind"] == "agent"].reset_index(drop=True)  # agents read features, not these closes
    pd.testing.assert_frame_equal(agents, test_ledger[test_ledger["kind"] == "agent"].reset_index(drop=True))


def test_test_metrics_depend_on_the_test_table_only(model_inputs, setup, bundles, test_ledger):
    """Appending rows after the end of the test table changes nothing before them (causal), while
    perturbing test rows does change test metrics (so the check can fail)."""
    base = nodes.metrics_test(test_ledger)
    test, prices = model_inputs["test"], model_inputs["prices"]
    after = prices[prices.index > test.index[-1]].iloc[:5]  # the next real bars, any features
    extra = test.iloc[-5:].copy()
    extra.index = after.index
    extra[list(after.columns)] = after.to_numpy()
    trimmed = nodes.backtest_test(pd.concat([test, extra]), prices, setup, **bundles)
    assert len(trimmed) > len(test_ledger)  # the extra bars are replayed ...
    trimmed = trimmed[pd.DatetimeIndex(trimmed["date"]) <= test.index[-1]]
    pd.testing.assert_frame_equal(
        trimmed.reset_index(drop=True), test_ledger.reset_index(drop=True)
    )  # ... causally
    shifted = test.copy()
    shifted.iloc[len(shifted) // 2 :, shifted.columns.get_loc("Close")] *= 1.05
    shifted_prices = prices.copy()
    shifted_prices.loc[shifted.index, "Close"] = shifted["Close"]
    moved = nodes.metrics_test(nodes.backtest_test(shifted, shifted_prices, setup, **bundles))
    assert not np.allclose(moved["total_return"], base["total_return"])


def _perturbed_test_records(records: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = records.copy()
    for col in ("sharpe", "max_drawdown", "psr", "total_return", "final_equity"):
        out[col] = rng.permutation(out[col].to_numpy()) * rng.uniform(-3, 3)
    return out


HISTORIES = {a: make_history(a) for a in ("ppo", "a2c", "dqn")}


def _select(val, test, setup, model_inputs, decisions=()):
    return nodes.select_champion(val, test, setup, model_inputs["test"], list(decisions), **HISTORIES)


def test_champion_is_chosen_on_validation_only(model_inputs, setup, bundles, test_ledger):
    val = nodes.metrics_validation(
        nodes.backtest_validation(model_inputs["validation"], model_inputs["prices"], setup, **bundles)
    )
    test = nodes.metrics_test(test_ledger)
    champion, verdict, _, _ = _select(val, test, setup, model_inputs)
    agents = val[val["kind"] == "agent"]
    assert not agents["ruined"].any()
    best_agent = agents.groupby("agent")["sharpe"].mean().idxmax()  # the best seeds on average ...
    assert (champion["agent"], champion["seed"], champion["kind"]) == (best_agent, ENSEMBLE_SEED, "ensemble")
    assert champion["member"] == "ensemble"  # ... then their ensemble
    assert champion["selected_on"] == "validation" and champion["decided_on"] == "test"
    for k in range(3):
        other, other_verdict, _, _ = _select(val, _perturbed_test_records(test, k), setup, model_inputs)
        assert (other["agent"], other["seed"]) == (champion["agent"], champion["seed"])
        assert other["validation_metrics"] == champion["validation_metrics"]
    # its test record is reported as it is
    row = test[(test["agent"] == champion["agent"]) & (test["seed"] == champion["seed"])].iloc[0]
    assert champion["test_metrics"]["sharpe"] == pytest.approx(row["sharpe"])


def test_the_gate_decides_on_the_champions_test_record(model_inputs, setup, bundles, test_ledger):
    """Same validation, two test tables: a gate that only the champion's TEST Sharpe can pass
    passes when that record is good and fails when it is not, whatever validation says."""
    val = nodes.metrics_validation(
        nodes.backtest_validation(model_inputs["validation"], model_inputs["prices"], setup, **bundles)
    )
    test = nodes.metrics_test(test_ledger)
    champion, verdict, _, decision = _select(val, test, setup, model_inputs)
    row = test[(test["agent"] == champion["agent"]) & (test["seed"] == champion["seed"])].index[0]
    lenient = {"min_sharpe": -100.0, "max_drawdown": 1.0, "must_beat_buy_and_hold": False, "min_psr": 0.0}
    s = {**setup, "evaluation": {**setup["evaluation"], "gate": lenient}}
    good = test.copy()
    good.loc[row, "sharpe"] = 5.0
    bad = test.copy()
    bad.loc[row, "sharpe"] = -5.0
    gate = {**lenient, "min_sharpe": 1.0}
    s = {**setup, "evaluation": {**setup["evaluation"], "gate": gate}}
    assert _select(val, good, s, model_inputs)[1]["passed"] is True
    verdict_bad = _select(val, bad, s, model_inputs)[1]
    assert verdict_bad["passed"] is False and verdict_bad["rules"]["min_sharpe"]["value"] == -5.0
    assert verdict["decided_on"]["split"] == "test"
    assert verdict["decided_on"]["start"] == str(model_inputs["test"].index[0].date())
    # selection effort: every checkpoint evaluation in the histories is a trial, and so is every
    # seed ensemble's validation replay
    n_evals = sum(int(h["eval_score"].notna().sum()) for h in HISTORIES.values())
    assert verdict["selection"]["n_trials"] == n_evals + 3 == 3 * 2 * 4 + 3
    assert decision["config_sha256"] == setup["config_sha256"] and decision["window"] == {
        "start": verdict["decided_on"]["start"],
        "end": verdict["decided_on"]["end"],
    }


def test_reusing_a_test_window_is_counted_and_deflates_the_psr_rule(
    model_inputs, setup, bundles, test_ledger
):
    val = nodes.metrics_validation(
        nodes.backtest_validation(model_inputs["validation"], model_inputs["prices"], setup, **bundles)
    )
    test = nodes.metrics_test(test_ledger)
    _, first, _, decision = _select(val, test, setup, model_inputs)
    assert first["window_reuse"]["earlier_decisions"] == 0 and first["deflation"]["n_configurations"] == 1
    # the same configuration again: one earlier decision, still one configuration
    _, again, _, _ = _select(val, test, setup, model_inputs, [decision])
    assert again["window_reuse"]["earlier_decisions"] == 1 and again["deflation"]["n_configurations"] == 1
    assert again["rules"]["min_psr"]["value"] == first["rules"]["min_psr"]["value"]
    # nine other configurations on this window: the PSR hurdle rises, the rule's value falls
    others = [{**decision, "config_sha256": f"{i:064d}"} for i in range(9)]
    _, reused, _, _ = _select(val, test, setup, model_inputs, [decision, *others])
    assert reused["window_reuse"]["earlier_decisions"] == 10 and reused["deflation"]["n_configurations"] == 10
    assert reused["deflation"]["hurdle_sharpe_per_bar"] > first["deflation"]["hurdle_sharpe_per_bar"]
    assert reused["rules"]["min_psr"]["value"] < first["rules"]["min_psr"]["value"]
    # decisions on another window or other data do not count
    elsewhere = [{**d, "window": {"start": "1999-01-04", "end": "2000-12-29"}} for d in others] + [
        {**d, "data_fingerprint": "f" * 64} for d in others
    ]
    _, fresh, _, _ = _select(val, test, setup, model_inputs, elsewhere)
    assert fresh["window_reuse"]["earlier_decisions"] == 0


@pytest.mark.parametrize(
    "key, value",
    [
        ("commission_bps", 0.0),
        ("slippage_bps", 0.0),
        ("initial_capital", 1_000_000.0),
        ("borrow_bps_per_bar", 1.0),
        ("fill_price", "next_open"),
    ],
)
def test_tampered_costs_or_capital_are_refused(model_inputs, env_params, _eval_params, bundles, key, value):
    tampered = copy.deepcopy(bundles)
    spec_env = dict(tampered["a2c"].spec["environment"])
    spec_env[key] = value
    tampered["a2c"].spec["environment"] = spec_env
    setup = prepare(model_inputs, env_params, _eval_params, tampered)
    with pytest.raises(EvaluationInputError, match=rf"training\.a2c\.policy.*environment\.{key}"):
        nodes.backtest_validation(model_inputs["validation"], model_inputs["prices"], setup, **tampered)


def test_runs_with_different_setups_are_refused(env_params):
    cfg = EnvConfig.from_params(env_params)
    other = EnvConfig.from_params({**env_params, "commission_bps": env_params["commission_bps"] + 1})
    assert (
        check_run_setups({"ppo": cfg, "buy_and_hold": cfg})["commission_bps"] == env_params["commission_bps"]
    )
    with pytest.raises(ValueError, match="commission_bps"):
        check_run_setups({"ppo": cfg, "buy_and_hold": other})


def test_evaluation_params_cannot_set_costs(model_inputs, env_params, _eval_params, bundles):
    bad = {**_eval_params, "commission_bps": 0.0}
    with pytest.raises(
        ValueError, match=r"evaluation: commission_bps is not an evaluation parameter.*params:environment"
    ):
        prepare(model_inputs, env_params, bad, bundles)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda p: p["gate"].update(min_psr=2), r"evaluation\.gate\.min_psr"),
        (lambda p: p["benchmarks"].update(random_seeds=50), r"evaluation\.benchmarks\.random_seeds"),
        (
            lambda p: p["benchmarks"].update(sma_fast=200),
            r"evaluation\.benchmarks: sma_fast \(200\) must be smaller",
        ),
        (lambda p: p.update(rank_metric="luck"), r"evaluation\.rank_metric"),
    ],
)
def test_bad_parameters_name_the_key(model_inputs, env_params, eval_params, bundles, mutate, match):
    mutate(eval_params)
    with pytest.raises(ValueError, match=match):
        prepare(model_inputs, env_params, eval_params, bundles)


def test_feature_mismatch_is_refused(model_inputs, env_params, _eval_params, bundles):
    wrong = copy.deepcopy(bundles)
    wrong["ppo"].spec["feature_names"] = list(reversed(wrong["ppo"].spec["feature_names"]))
    setup = prepare(model_inputs, env_params, _eval_params, wrong)
    with pytest.raises(EvaluationInputError, match=r"training\.ppo\.policy.*feature_names"):
        nodes.backtest_validation(model_inputs["validation"], model_inputs["prices"], setup, **wrong)


def test_agents_are_replayed_deterministically(model_inputs, setup, bundles, test_ledger):
    again = nodes.backtest_test(model_inputs["test"], model_inputs["prices"], setup, **bundles)
    pd.testing.assert_frame_equal(test_ledger, again)
    agents = test_ledger[test_ledger["kind"] == "agent"]
    # the fixtures' random policies do trade, so the metrics below are not about idle accounts
    assert agents.groupby(["run", "seed"])["shares"].nunique().min() > 1


@given(
    n=st.integers(2, 300), extra=st.integers(1, 50), p=st.floats(0.01, 1.0), seed=st.integers(0, 2**32 - 1)
)
@settings(max_examples=50, deadline=None)
def test_random_policy_is_prefix_stable(n, extra, p, seed):
    """A random decision at bar t does not depend on how many bars follow."""
    short = random_targets(n, (0.0, 1.0), [seed, seed + 1], p)
    long = random_targets(n + extra, (0.0, 1.0), [seed, seed + 1], p)
    np.testing.assert_array_equal(short, long[:, :n])
