"""A refused parameter's hint can be followed as written: ``--params`` only ever names one
parameter (it cannot remove a key or set a whole block); keys to remove are named as such."""

from __future__ import annotations

import re

import pytest

from reinforce_strategy_creator.env.config import EnvConfig
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.compute import ComputeParams
from reinforce_strategy_creator.params.deployment import DeploymentParams
from reinforce_strategy_creator.params.portfolio import PortfolioParams
from tests.support.project import copy_project, kedro

LEAVES = {name for block in (DeploymentParams, ComputeParams, EnvConfig) for name, _, _ in block.docs_rows()}
HINTED = re.compile(r"--params ([\w.]+)=<value>")


@pytest.mark.parametrize(
    ("block", "raw", "hint"),
    [
        (
            DeploymentParams,
            {"initial_capital": 5_000},
            "the initial capital is environment.initial_capital (conf/base/parameters_environment.yml, "
            "or --params environment.initial_capital=<value>), the value the agents were trained with. "
            "Remove deployment.initial_capital from conf/base/parameters_deployment.yml (or from the "
            "command's --params).",
        ),
        (
            DeploymentParams,
            {"registry_path": "x.jsonl"},
            "the registry file is the filepath of deployment.model_registry in "
            "conf/base/catalog_deployment.yml. Remove deployment.registry_path from",
        ),
        (
            DeploymentParams,
            {"risk": {"stop": 1}},
            "Remove deployment.risk.stop from conf/base/parameters_deployment.yml",
        ),
        (
            DeploymentParams,
            {"risk": {"max_drawdown": 2}},
            "Fix it in conf/base/parameters_deployment.yml or with "
            "--params deployment.risk.max_drawdown=<value>.",
        ),
        (DeploymentParams, {"risk": 3}, "(got 3). Fix it in conf/base/parameters_deployment.yml."),
        (
            ComputeParams,
            {"backend": "processes", "address": "tcp://host:8786"},
            "set compute.backend=dask or remove compute.address. Fix it in conf/base/parameters_compute.yml.",
        ),
        (
            PortfolioParams,
            {"environment": {"window": 8}},
            "portfolio.environment: no longer a parameter here: the account (window, costs, long_only, "
            "gross_leverage, band, ...) is the top-level `environment` block",
        ),
        (
            EnvConfig,
            {"long_only": True, "gross_leverage": 2.0},
            "set long_only: false to allow shorts under gross_leverage, or gross_leverage: 1.0. Fix it in "
            "conf/base/parameters_environment.yml.",
        ),
    ],
    ids=[
        "moved-key",
        "moved-to-catalog",
        "unknown-key",
        "bad-value",
        "bad-block",
        "rule-across-keys",
        "moved-block",
        "account-rule",
    ],
)
def test_the_hint_names_one_parameter_or_a_key_to_remove(block, raw, hint):
    with pytest.raises(ParameterError) as info:
        block.parse(raw)
    msg = str(info.value)
    assert hint in msg
    assert set(HINTED.findall(msg)) <= LEAVES
    assert not re.search(r"--params [\w.]+=\.\.\.", msg)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bad", "good_value"),
    [("deployment.initial_capital=5000", "5000"), ("deployment.risk.max_drawdown=2", "0.1")],
)
def test_following_the_hint_with_kedro_run_passes_the_parameter_check(tmp_path, bad, good_value):
    root = copy_project(tmp_path / "project", raw=False)
    refused = kedro(
        root, "run", "--pipelines", "deployment", "--nodes", "deployment.check_mode", "--params", bad
    )
    assert refused.returncode != 0 and "ParameterValidationError" in refused.stderr
    (param,) = HINTED.findall(refused.stderr)
    followed = kedro(
        root,
        "run",
        "--pipelines",
        "deployment",
        "--nodes",
        "deployment.check_mode",
        "--params",
        f"{param}={good_value}",
    )
    assert followed.returncode == 0, followed.stderr[-2000:]
