"""The tuning block: every bad search space or storage is refused before any training, naming the
parameter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.tuning import TuningParams, check_search_space
from reinforce_strategy_creator.project_params import parameters
from reinforce_strategy_creator.tuning.study import prepare

TRAINING = {"common": {"seeds": [0]}, "ppo": {"algorithm": "ppo", "num_steps": 64}}


def _base(**tuning) -> dict:
    p = parameters("quick")
    return {
        **p,
        "training": {"common": p["training"]["common"], "ppo": p["training"]["ppo"]},
        "tuning": tuning,
    }


def test_conf_base_tuning_block_is_valid_and_its_space_fits_ppo():
    p = parameters()
    tuning = TuningParams.parse(p["tuning"])
    check_search_space(tuning, p["training"])
    assert tuning.agent == "ppo" and tuning.n_trials == 20


def test_an_unknown_hyperparameter_is_named_with_the_allowed_ones():
    tuning = TuningParams.parse(
        {"search_space": {"learning_rat": {"type": "float", "low": 0.1, "high": 0.2}}}
    )
    with pytest.raises(
        ParameterError,
        match=r"tuning\.search_space\.learning_rat: not a hyperparameter of "
        r"training\.ppo \(algorithm ppo\); choose from \[.*'learning_rate'",
    ):
        check_search_space(tuning, TRAINING)


def test_a_common_key_that_sets_what_is_trained_on_is_not_searchable():
    tuning = TuningParams.parse({"search_space": {"seeds": {"type": "categorical", "choices": [0, 1]}}})
    with pytest.raises(ParameterError, match=r"tuning\.search_space\.seeds: not a hyperparameter"):
        check_search_space(tuning, TRAINING)


def test_an_unknown_agent_is_named():
    with pytest.raises(ParameterError, match=r"tuning\.agent: 'sac' is not an agent block of training"):
        check_search_space(TuningParams.parse({"agent": "sac"}), TRAINING)


@given(low=st.floats(-10, 10), gap=st.floats(0, 5))
def test_an_empty_or_inverted_range_names_the_hyperparameter(low, gap):
    with pytest.raises(ParameterError, match=r"tuning\.search_space\.gamma: empty or inverted range"):
        TuningParams.parse({"search_space": {"gamma": {"type": "float", "low": low, "high": low - gap}}})


@pytest.mark.parametrize(
    ("rng", "message"),
    [
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "a log range needs low > 0"),
        ({"type": "int", "low": 1}, "needs both `low` and `high`"),
        ({"type": "categorical", "choices": []}, "non-empty `choices`"),
        ({"type": "int", "low": 1.5, "high": 4}, "whole-number bounds"),
        ({"type": "float", "low": 0.1, "high": 0.2, "lo": 1}, r"\.lo: unknown parameter"),
        ({"type": "uniform", "low": 0.1, "high": 0.2}, r"\.type"),
    ],
)
def test_bad_ranges_are_named(rng, message):
    with pytest.raises(ParameterError, match=rf"tuning\.search_space\.gamma.*{message}"):
        TuningParams.parse({"search_space": {"gamma": rng}})


def test_an_empty_search_space_is_refused():
    with pytest.raises(ParameterError, match=r"tuning\.search_space: .*is empty"):
        TuningParams.parse({"search_space": {}})


def test_corners_that_make_an_invalid_training_block_are_refused_before_training():
    p = _base(search_space={"num_minibatches": {"type": "int", "low": 1, "high": 4096}})
    with pytest.raises(ParameterError, match=r"tuning\.search_space: the values .* invalid training\.ppo"):
        prepare(p)


def test_a_journal_file_with_a_remote_dask_cluster_is_refused():
    p = _base()
    p["compute"] = {"backend": "dask", "address": "tcp://10.0.0.1:8786"}
    with pytest.raises(ParameterError, match=r"tuning\.storage: .* postgresql://"):
        prepare(p)


def test_a_bad_storage_url_is_named():
    from reinforce_strategy_creator.tuning.storage import open_storage

    with pytest.raises(ParameterError, match=r"tuning\.storage: cannot use sqlite:///"):
        open_storage(TuningParams.parse({}), "sqlite:////nonexistent-dir/x/y.db")
