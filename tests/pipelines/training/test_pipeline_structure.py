"""Wiring of the training stage against docs/contracts.md, and the shipped parameter files."""

from __future__ import annotations

import pytest
import yaml

from reinforce_strategy_creator.agents import ALGORITHMS
from reinforce_strategy_creator.params.training import COMMON_KEYS, TrainingParams
from reinforce_strategy_creator.pipelines.training import create_pipeline
from reinforce_strategy_creator.project_params import agent_names
from tests.support.project import PROJECT_ROOT

AGENTS = ("ppo", "a2c", "dqn")

BOUNDARY = {"model_input_train", "model_input_validation", "feature_scaler"}


def test_one_namespaced_instance_per_agent_block_of_the_parameters():
    assert agent_names() == list(AGENTS)  # the shipped parameters have three agent blocks
    p = create_pipeline()
    assert set(AGENTS) == set(ALGORITHMS)
    other = create_pipeline(agents=["ppo", "ppo_fast"])  # any block name gets its namespace
    assert {n.namespace for n in other.nodes} == {"training.ppo", "training.ppo_fast"}
    names = {n.name for n in p.nodes}
    assert names == {f"training.{a}.{n}" for a in AGENTS for n in ("train", "plot_learning_curve")}
    for a in AGENTS:
        sub = p.only_nodes_with_namespaces([f"training.{a}"])
        assert {n.namespace for n in sub.nodes} == {f"training.{a}"}
        assert sub.inputs() == BOUNDARY | {
            "params:environment",
            "params:training",
            "params:feature_engineering",
            "params:compute",
        }
        assert sub.all_outputs() == {
            f"training.{a}.policy",
            f"training.{a}.history",
            f"training.{a}.learning_curve",
        }
        assert all({"training", a} <= n.tags for n in sub.nodes)
        tagged = p.only_nodes_with_tags(a)
        assert {n.name for n in tagged.nodes} == {n.name for n in sub.nodes}
    # the train node returns exactly (policy, history): the figure is a separate node
    train = next(n for n in p.nodes if n.name == "training.ppo.train")
    assert train.outputs == ["training.ppo.policy", "training.ppo.history"]


def test_catalog_factories_declare_every_agents_outputs():
    """Dataset factories `training.{agent}.*` resolve for any agent name, with a layer each."""
    from kedro.io import DataCatalog

    cat = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_training.yml").read_text())
    for pattern in cat:
        assert cat[pattern]["metadata"]["kedro-viz"]["layer"]
    catalog = DataCatalog.from_config(cat)
    for a in (*AGENTS, "ppo_fast"):
        pol = catalog.get(f"training.{a}.policy")
        hist = catalog.get(f"training.{a}.history")
        fig = catalog.get(f"training.{a}.learning_curve")
        assert type(pol).__name__ == "PolicyArtifactDataset" and str(pol._filepath).endswith(
            f"data/06_models/{a}_policy"
        )
        assert type(hist).__name__ == "ParquetDataset"
        assert str(hist._filepath).endswith(f"data/07_model_output/{a}_training_history.parquet")
        assert str(fig._filepath).endswith(f"data/08_reporting/{a}_learning_curve.png")
    assert create_pipeline().all_outputs() == {
        f"training.{a}.{d}" for a in AGENTS for d in ("policy", "history", "learning_curve")
    }


@pytest.mark.parametrize("env", ["base", "quick"])
def test_parameter_files_validate(env):
    params = yaml.safe_load((PROJECT_ROOT / f"conf/{env}/parameters_training.yml").read_text())["training"]
    assert set(params) == {"common", *AGENTS}
    assert set(params["common"]) <= set(COMMON_KEYS)
    plans = TrainingParams.parse(params).agents
    for a in AGENTS:
        assert plans[a].algorithm == a
        assert len(plans[a].settings.seeds) >= 2  # cross-seed statistics need at least two


def test_quick_budgets_are_small():
    params = yaml.safe_load((PROJECT_ROOT / "conf/quick/parameters_training.yml").read_text())["training"]
    base = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())["training"]
    for a in AGENTS:
        assert params[a].get("total_steps", params["common"]["total_steps"]) <= 10_000
        assert base[a].get("total_steps", base["common"]["total_steps"]) >= 100_000
