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
    evaluate_gate,
    select_champion,
)
from reinforce_strategy_creator.evaluation.metrics import EvaluationInputError
from reinforce_strategy_creator.params.base import ParameterError

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
    no_bh = evaluate_gate(
        {"sharpe": 0.55, "max_drawdown": -0.1, "psr": 0.95}, BH, {**PARAMS, "must_beat_buy_and_hold": False}
    )
    assert no_bh["passed"] is True and "beats_buy_and_hold" not in no_bh["rules"]


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"max_drawdown": -0.2}, r"evaluation\.gate\.max_drawdown: Input should be greater than 0"),
        ({"max_drawdown": 25}, r"evaluation\.gate\.max_drawdown: Input should be less than or equal to 1"),
        ({"min_psr": 1.5}, r"evaluation\.gate\.min_psr: Input should be less than or equal to 1"),
        ({"min_sharpe": "high"}, r"evaluation\.gate\.min_sharpe: must be a number, not text"),
        (
            {"must_beat_buy_and_hold": "yes"},
            r"evaluation\.gate\.must_beat_buy_and_hold: Input should be a valid boolean",
        ),
        (
            {"min_sharp": 1.0},
            r"evaluation\.gate\.min_sharp: unknown parameter; allowed parameters are \['max_drawdown'",
        ),
    ],
)
def test_param_errors_name_the_parameter(patch, match):
    with pytest.raises(ParameterError, match=match):
        GateParams.from_params({**PARAMS, **patch})
    # a threshold left out takes its documented default
    assert GateParams.from_params({"min_sharpe": 1.0}).min_psr == 0.95


def _validation():
    return pd.DataFrame(
        {
            "agent": ["ppo", "ppo", "dqn", "dqn", "a2c"],
            "seed": [0, 1, 0, 1, 0],
            "sharpe": [1.2, 1.9, 2.5, 1.0, 3.0],
            "max_drawdown": [-0.1, -0.2, -0.1, -0.1, -0.5],
            "psr": [0.95, 0.99, 0.98, 0.92, 0.999],
        }
    )


def test_champion_is_the_best_validation_rank_metric_whatever_the_gate():
    """The gate is not applied on validation: it decides later, on the champion's test replay."""
    c = select_champion(_validation(), "sharpe")
    assert (c["agent"], c["seed"]) == ("a2c", 0)  # highest validation Sharpe, drawdown notwithstanding
    assert c["n_candidates"] == 5 and c["n_ranked"] == 5 and c["validation"]["sharpe"] == 3.0
    assert (
        select_champion(_validation(), "psr")["agent"],
        select_champion(_validation(), "psr")["seed"],
    ) == ("a2c", 0)
    json.dumps(c, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["permute", "corrupt", "nan"]))
def test_non_rank_columns_cannot_change_the_champion(seed, how):
    """Only the rank metric decides: scrambling every other column (as test metrics would be,
    were they present) never moves the choice."""
    rng = np.random.default_rng(seed)
    v = _validation()
    cols = ["max_drawdown", "psr"]
    if how == "permute":
        v[cols] = v[cols].to_numpy()[rng.permutation(len(v))]
    elif how == "corrupt":
        v[cols] = rng.normal(0, 10, size=(len(v), 2))
    else:
        v[cols] = np.nan
    c = select_champion(v, "sharpe")
    assert (c["agent"], c["seed"]) == ("a2c", 0)


def test_ties_are_deterministic_and_no_finite_metric_gives_none():
    v = _validation()
    v.loc[:, "sharpe"] = 2.0
    c = select_champion(v, "sharpe")
    assert (c["agent"], c["seed"]) == ("a2c", 0)  # name order on ties, then seed
    v = v[v["agent"] != "a2c"]
    assert (select_champion(v, "sharpe")["agent"], select_champion(v, "sharpe")["seed"]) == ("dqn", 0)
    v.loc[:, "sharpe"] = np.nan
    c = select_champion(v, "sharpe")
    assert c["agent"] is None and c["validation"] is None and "finite" in c["reason"]


def test_a_ruined_run_is_never_the_champion():
    """Its Sharpe up to the bar of ruin can be the highest; a wiped-out account still never wins."""
    v = _validation().assign(ruined=[False, False, False, False, True])
    c = select_champion(v, "sharpe")
    assert (c["agent"], c["seed"]) == ("dqn", 0)  # a2c seed 0 has the best Sharpe but was ruined
    c = select_champion(v.assign(ruined=True), "sharpe")
    assert c["agent"] is None


def test_missing_column_is_an_error():
    with pytest.raises(EvaluationInputError, match="missing column 'sortino'"):
        select_champion(_validation(), "sortino")
