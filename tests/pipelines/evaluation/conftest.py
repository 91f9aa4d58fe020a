"""Fixtures for the evaluation pipeline tests (helpers: ``tests/support/evaluation.py``)."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from reinforce_strategy_creator.artifacts import PolicyBundle
from tests.support.evaluation import build_model_inputs, load_yaml, make_bundle


@pytest.fixture(scope="session")
def env_params() -> dict:
    return load_yaml("parameters_environment.yml")["environment"]


@pytest.fixture(scope="session")
def _eval_params() -> dict:
    return load_yaml("parameters_evaluation.yml")["evaluation"]


@pytest.fixture
def eval_params(_eval_params) -> dict:
    return copy.deepcopy(_eval_params)


@pytest.fixture(scope="session")
def model_inputs(env_params) -> dict[str, pd.DataFrame]:
    """model_input_{train,validation,test} from real S&P 500 prices (project parameters), with the
    prices, scaler and feature specification the evaluation stage reads besides the tables."""
    return build_model_inputs(env_params)


@pytest.fixture(scope="session")
def bundles(model_inputs, env_params) -> dict[str, PolicyBundle]:
    return {a: make_bundle(a, model_inputs, env_params) for a in ("ppo", "a2c", "dqn")}
