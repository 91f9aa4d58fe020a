"""What a run records, as plain data: flattened parameters, the verdict, the stitched metrics,
the folds with their training curves, a tuning study with its trials."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reinforce_strategy_creator.params.compute import ComputeParams
from reinforce_strategy_creator.tracking.record import (
    cycle_record,
    flat_params,
    stitched_metrics,
    study_record,
    verdict_record,
)

VERDICT = {
    "passed": False,
    "decided_on": {
        "split": "walk_forward",
        "start": "2013-01-02",
        "end": "2017-12-29",
        "n_bars": 1258,
        "data_fingerprint": "abc123",
    },
    "rules": {
        "min_sharpe": {"value": 1.08, "passed": True},
        "min_psr": {"value": 0.5, "passed": False},
    },
    "pbo": {"pbo": 0.25},
    "dsr": {"value": 0.97, "n_trials": 9},
    "deflation": {"n_configurations": 3},
    "window_reuse": {"earlier_decisions": 2},
    "selection": {"checkpoint_evaluations": 200, "tuning_trials": 0},
}


def test_every_block_is_flattened_typed_blocks_lists_and_empty_mappings_included():
    flat = flat_params(
        {
            "compute": ComputeParams(backend="processes", workers=2),
            "training": {"ppo": {"learning_rate": 3e-4, "hidden": [64, 64]}, "extra": {}},
        }
    )
    assert flat["compute.backend"] == "processes" and flat["compute.workers"] == "2"
    assert flat["training.ppo.learning_rate"] == "0.0003"
    assert flat["training.ppo.hidden"] == "[64, 64]" and flat["training.extra"] == "{}"


def test_the_verdict_becomes_tags_and_metrics():
    record = verdict_record(VERDICT)
    assert record.tags == {
        "verdict.passed": "false",
        "verdict.decided_on": "walk_forward 2013-01-02..2017-12-29 (1258 bars)",
        "data_fingerprint": "abc123",
    }
    m = record.metrics
    assert (m["gate.passed"], m["gate.min_psr.passed"], m["gate.min_sharpe.passed"]) == (0.0, 0.0, 1.0)
    assert (m["gate.psr_deflated"], m["gate.pbo"], m["gate.dsr"], m["gate.dsr_trials"]) == (
        0.5,
        0.25,
        0.97,
        9,
    )
    assert (m["gate.deflation_configurations"], m["gate.earlier_decisions"]) == (3, 2)


def test_stitched_metrics_name_the_procedure_each_agent_and_benchmark_and_leave_out_nan():
    table = pd.DataFrame(
        [
            {"kind": "procedure", "agent": "procedure", "seed": 0, "sharpe": 1.1, "calmar": 0.9},
            {"kind": "agent_selected", "agent": "ppo", "seed": 0, "sharpe": 0.7, "calmar": 0.4},
            {"kind": "agent", "agent": "ppo", "seed": 3, "sharpe": 9.0, "calmar": 9.0},
            {"kind": "benchmark", "agent": "flat", "seed": 0, "sharpe": math.nan, "calmar": math.nan},
            {"kind": "random", "agent": "random", "seed": 1, "sharpe": 5.0, "calmar": 5.0},
        ]
    )
    assert stitched_metrics(table) == {
        "procedure.sharpe": 1.1,
        "procedure.calmar": 0.9,
        "agent.ppo.sharpe": 0.7,
        "agent.ppo.calmar": 0.4,
    }


def test_each_fold_is_a_nested_run_with_its_figures_and_every_seeds_curves_by_step():
    folds = pd.DataFrame(
        [
            {"fold": "fold_1", "label": "2013", "test_start": "2013-01-02", "test_end": "2013-12-31",
             "champion": "ppo ensemble", "validation_sharpe": 0.4, "procedure_test_sharpe": 2.1},
            {"fold": "fold_2", "label": "2014", "test_start": "2014-01-02", "test_end": "2014-12-31",
             "champion": "dqn seed 1", "validation_sharpe": 1.6, "procedure_test_sharpe": math.nan},
        ]
    )  # fmt: skip
    history = pd.DataFrame(
        [
            {
                "fold": "fold_1",
                "agent": "ppo",
                "seed": 0,
                "step": 0,
                "eval_score": 0.1,
                "policy_loss": math.nan,
            },
            {
                "fold": "fold_1",
                "agent": "ppo",
                "seed": 0,
                "step": 512,
                "eval_score": 0.3,
                "policy_loss": -0.2,
            },
            {"fold": "fold_2", "agent": "ppo", "seed": 0, "step": 512, "eval_score": 0.5, "policy_loss": 0.1},
        ]
    )
    record = cycle_record(VERDICT, None, folds, history)
    first, second = record.children
    assert first.name == "fold_1" and first.tags["champion"] == "ppo ensemble"
    assert first.metrics == {"validation_sharpe": 0.4, "procedure_test_sharpe": 2.1}
    assert first.history == [
        ("ppo.seed0.eval_score", 0.1, 0),
        ("ppo.seed0.eval_score", 0.3, 512),
        ("ppo.seed0.policy_loss", -0.2, 512),
    ]
    assert second.metrics == {"validation_sharpe": 1.6}
    assert record.tags["verdict.passed"] == "false"


@pytest.mark.parametrize("state", ["COMPLETE", "PRUNED", "FAIL"])
def test_a_study_is_the_parent_with_its_counted_trials_and_each_trial_a_nested_run(state):
    summary = {
        "study_name": "ppo_search",
        "agent": "ppo",
        "storage": "journal",
        "window": {"start": "2010-01-04", "end": "2017-12-29"},
        "trials": {"complete": 1, "pruned": 0, "fail": 0},
        "trials_counted": 2,
        "best_value": 0.8,
        "best_trial": 0,
        "data_fingerprint": "abc",
    }
    trials = pd.DataFrame(
        [{"number": 0, "state": state, "value": 0.8 if state == "COMPLETE" else None, "param_gamma": 0.9}]
    )
    record = study_record(summary, trials)
    assert record.metrics["study.trials_counted"] == 2 and record.tags["study.name"] == "ppo_search"
    (trial,) = record.children
    assert trial.name == "trial 0" and trial.params == {"gamma": "0.9"} and trial.tags["state"] == state
    assert ("value" in trial.metrics) == (state == "COMPLETE")
