"""Gate rules, parameter validation, and validation-only champion selection."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reinforce_strategy_creator.evaluation.gate import (
    GateParams,
    champion_with_test,
    evaluate_gate,
    select_champion,
)
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError

PARAMS = {"min_sharpe": 0.5, "max_drawdown": 0.25, "must_beat_buy_and_hold": True, "min_psr": 0.9}
BH = {"sharpe": 0.6}


def test_verdict_rules_values_thresholds():
    v = evaluate_gate({"sharpe": 0.8, "max_drawdown": -0.3, "psr": 0.95}, BH, PARAMS)
    assert v["passed"] is False
    r = v["rules"]
    assert r["min_sharpe"] == {"value": 0.8, "threshold": 0.5, "comparison": ">=", "passed": True}
    assert r["max_drawdown"]["passed"] is False and r["max_drawdown"]["threshold"] == -0.25
    assert r["beats_buy_and_hold"]["passed"] is True and r["beats_buy_and_hold"]["threshold"] == 0.6
    assert r["min_psr"]["passed"] is True
    json.dumps(v, allow_nan=False)  # strict JSON


def test_boundaries_and_nan():
    ok = evaluate_gate({"sharpe": 0.5, "max_drawdown": -0.25, "psr": 0.9}, {"sharpe": 0.4}, PARAMS)
    assert ok["passed"] is True  # thresholds are inclusive
    tie = evaluate_gate({"sharpe": 0.6, "max_drawdown": -0.1, "psr": 0.95}, BH, PARAMS)
    assert tie["rules"]["beats_buy_and_hold"]["passed"] is False  # must strictly beat
    nan = evaluate_gate({"sharpe": float("nan"), "max_drawdown": -0.1, "psr": 0.95}, BH, PARAMS)
    assert nan["passed"] is False and nan["rules"]["min_sharpe"]["value"] is None
    no_bh = evaluate_gate({"sharpe": 0.55, "max_drawdown": -0.1, "psr": 0.95}, BH,
                          {**PARAMS, "must_beat_buy_and_hold": False})
    assert no_bh["passed"] is True and "beats_buy_and_hold" not in no_bh["rules"]


@pytest.mark.parametrize(("patch", "match"), [
    ({"max_drawdown": -0.2}, "evaluation.gate.max_drawdown"),
    ({"max_drawdown": 25}, "evaluation.gate.max_drawdown"),
    ({"min_psr": 1.5}, "evaluation.gate.min_psr"),
    ({"min_sharpe": "high"}, "evaluation.gate.min_sharpe"),
    ({"must_beat_buy_and_hold": "yes"}, "evaluation.gate.must_beat_buy_and_hold"),
    ({"min_sharp": 1.0}, "unknown key"),
])
def test_param_errors_name_the_parameter(patch, match):
    with pytest.raises(EvaluationInputError, match=match):
        GateParams.from_params({**PARAMS, **patch})
    with pytest.raises(EvaluationInputError, match="missing key"):
        GateParams.from_params({"min_sharpe": 1.0})


def _validation():
    return pd.DataFrame({
        "agent": ["ppo", "ppo", "dqn", "dqn", "a2c"],
        "seed": [0, 1, 0, 1, 0],
        "sharpe": [1.2, 1.9, 2.5, 1.0, 3.0],
        "max_drawdown": [-0.1, -0.2, -0.1, -0.1, -0.5],  # a2c fails the drawdown rule
        "psr": [0.95, 0.99, 0.98, 0.92, 0.999],
    })


def _test_records(rng=None):
    df = _validation().copy()
    df["sharpe"] = [0.3, -0.2, 0.1, 4.0, 5.0]
    df["max_drawdown"] = [-0.1, -0.3, -0.2, -0.1, -0.1]
    df["psr"] = [0.6, 0.2, 0.5, 0.999, 0.999]
    return df


def test_champion_is_best_passing_on_validation_and_test_reported_as_is():
    c = champion_with_test(_validation(), {"sharpe": 0.8}, _test_records(), {"sharpe": 0.2}, PARAMS)
    assert (c["agent"], c["seed"]) == ("dqn", 0)  # a2c has higher Sharpe but fails the gate
    assert c["n_candidates"] == 5 and c["n_passed"] == 4
    assert c["validation"]["sharpe"] == 2.5 and c["validation_verdict"]["passed"] is True
    assert c["test"]["sharpe"] == 0.1  # the test record as-is, even though it is poor
    assert c["test_verdict"]["passed"] is False
    json.dumps(c, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["permute", "corrupt", "nan"]))
def test_test_metrics_cannot_change_the_champion(seed, how):
    rng = np.random.default_rng(seed)
    test = _test_records()
    cols = ["sharpe", "max_drawdown", "psr"]
    if how == "permute":
        test[cols] = test[cols].to_numpy()[rng.permutation(len(test))]
    elif how == "corrupt":
        test[cols] = rng.normal(0, 10, size=(len(test), 3))
    else:
        test[cols] = np.nan
    c = champion_with_test(_validation(), {"sharpe": 0.8}, test, {"sharpe": 0.2}, PARAMS)
    assert (c["agent"], c["seed"]) == ("dqn", 0)
    assert c["test"]["seed"] == 0 and c["test"]["agent"] == "dqn"


def test_ties_are_deterministic_and_no_passer_gives_none():
    v = _validation()
    v.loc[:, "sharpe"] = 2.0
    v.loc[4, "max_drawdown"] = -0.1
    assert select_champion(v, {"sharpe": 0.8}, PARAMS)["agent"] == "a2c"  # name order on ties
    strict = {**PARAMS, "min_sharpe": 10.0}
    c = champion_with_test(_validation(), {"sharpe": 0.8}, _test_records(), {"sharpe": 0.2}, strict)
    assert c["agent"] is None and c["test"] is None and "no agent" in c["reason"]


def test_missing_test_row_is_an_error():
    with pytest.raises(EvaluationInputError, match="dqn.*seed 0"):
        champion_with_test(_validation(), {"sharpe": 0.8}, _test_records().iloc[:2], {"sharpe": 0.2}, PARAMS)
