"""Wiring of the training stage against docs/contracts.md, and the shipped parameter files."""

from __future__ import annotations

import pytest
import yaml

from reinforce_strategy_creator.agents import ALGORITHMS
from reinforce_strategy_creator.pipelines.training import AGENTS, create_pipeline
from reinforce_strategy_creator.training import COMMON_KEYS, validate_training
from tests.conftest import PROJECT_ROOT

BOUNDARY = {"model_input_train", "model_input_validation", "feature_scaler"}


def test_one_namespaced_instance_per_agent():
    p = create_pipeline()
    assert set(AGENTS) == set(ALGORITHMS) == {"ppo", "a2c", "dqn"}
    names = {n.name for n in p.nodes}
    assert names == {f"training.{a}.{n}" for a in AGENTS for n in ("train", "plot_learning_curve")}
    for a in AGENTS:
        sub = p.only_nodes_with_namespaces([f"training.{a}"])
        assert {n.namespace for n in sub.nodes} == {f"training.{a}"}
        assert sub.inputs() == BOUNDARY | {"params:environment", "params:training.common", f"params:training.{a}",
                                          "params:training", "params:feature_engineering.features"}
        assert sub.all_outputs() == {f"training.{a}.policy", f"training.{a}.history", f"training.{a}.learning_curve"}
        assert all({"training", a} <= n.tags for n in sub.nodes)
        tagged = p.only_nodes_with_tags(a)
        assert {n.name for n in tagged.nodes} == {n.name for n in sub.nodes}
    # the train node returns exactly (policy, history): the figure is a separate node
    train = next(n for n in p.nodes if n.name == "training.ppo.train")
    assert train.outputs == ["training.ppo.policy", "training.ppo.history"]


def test_catalog_entries_follow_the_contract():
    cat = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_training.yml").read_text())
    produced = create_pipeline().all_outputs()
    for name in produced:
        assert name in cat, f"{name} is not declared in catalog_training.yml"
        assert cat[name]["metadata"]["kedro-viz"]["layer"]
    for a in AGENTS:
        pol, hist, fig = cat[f"training.{a}.policy"], cat[f"training.{a}.history"], cat[f"training.{a}.learning_curve"]
        assert pol["type"].endswith("PolicyArtifactDataset") and pol["versioned"] is True
        assert pol["filepath"] == f"data/06_models/{a}_policy" and pol["metadata"]["kedro-viz"]["layer"] == "models"
        assert hist["type"] == "pandas.ParquetDataset"
        assert hist["filepath"] == f"data/07_model_output/{a}_training_history.parquet"
        assert hist["metadata"]["kedro-viz"]["layer"] == "model_output"
        assert fig["type"] == "matplotlib.MatplotlibDataset"
        assert fig["filepath"] == f"data/08_reporting/{a}_learning_curve.png"
        assert fig["metadata"]["kedro-viz"]["layer"] == "reporting"


@pytest.mark.parametrize("env", ["base", "quick"])
def test_parameter_files_validate(env):
    params = yaml.safe_load((PROJECT_ROOT / f"conf/{env}/parameters_training.yml").read_text())["training"]
    assert set(params) == {"common", *AGENTS}
    assert set(params["common"]) <= set(COMMON_KEYS)
    plans = validate_training(params)
    for a in AGENTS:
        assert plans[a].algorithm == a
        assert len(plans[a].settings.seeds) >= 2  # cross-seed statistics need at least two


def test_quick_budgets_are_small():
    params = yaml.safe_load((PROJECT_ROOT / "conf/quick/parameters_training.yml").read_text())["training"]
    base = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())["training"]
    for a in AGENTS:
        assert params[a].get("total_steps", params["common"]["total_steps"]) <= 10_000
        assert base[a].get("total_steps", base["common"]["total_steps"]) >= 100_000
