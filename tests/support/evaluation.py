"""Inputs for the evaluation pipeline tests: real S&P 500 model inputs (through the
feature_engineering pipeline and the project's parameters) and small PolicyBundles built from
seeded random initialisation, with specs as in docs/contracts.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from reinforce_strategy_creator.agents import build_policy
from reinforce_strategy_creator.agents.networks import ActorCriticPolicy, QPolicy
from reinforce_strategy_creator.artifacts import PolicyBundle
from reinforce_strategy_creator.env import BatchedTradingCore, EnvConfig, MarketArrays
from reinforce_strategy_creator.evaluation.backtests import run_provenance
from reinforce_strategy_creator.pipelines.evaluation import nodes
from reinforce_strategy_creator.pipelines.feature_engineering import (
    create_pipeline as fe_pipeline,
)
from tests.support.project import PROJECT_ROOT, SP500_CSV

CONF = PROJECT_ROOT / "conf" / "base"
OHLCV = ["Open", "High", "Low", "Close", "Volume"]
SEEDS = (0, 1)


class Kept(MemoryDataset):
    """A MemoryDataset the runner cannot release, so a test can read what was saved."""

    def _release(self) -> None:
        pass


def load_yaml(name: str) -> dict:
    return yaml.safe_load((CONF / name).read_text())


def build_model_inputs(env_params: dict) -> dict:
    """model_input_{train,validation,test} from real S&P 500 prices (project parameters)."""
    raw = pd.read_csv(SP500_CSV)
    idx = pd.DatetimeIndex(pd.to_datetime(raw["Date"], format="%m/%d/%Y"), name="date")
    prices = pd.DataFrame({c: raw[c].to_numpy(np.float64) for c in OHLCV}, index=idx)
    fe = load_yaml("parameters_feature_engineering.yml")["feature_engineering"]
    data = {
        "primary_prices": MemoryDataset(prices),
        "params:environment": MemoryDataset(env_params),
        "params:feature_engineering": MemoryDataset(fe, copy_mode="deepcopy"),
    }
    outputs = [f"model_input_{s}" for s in ("train", "validation", "test")]
    for name in (
        *outputs,
        "feature_scaler",
        "feature_engineering.features",
        "feature_engineering.split_summary",
    ):
        data[name] = Kept()
    catalog = DataCatalog(data)
    SequentialRunner().run(fe_pipeline(), catalog)
    tables = {s: catalog.load(f"model_input_{s}") for s in ("train", "validation", "test")}
    # what the evaluation stage reads besides the tables: prices (benchmark history), the scaler
    # and the feature specification (provenance of every policy)
    return {
        **tables,
        "prices": prices,
        "scaler": catalog.load("feature_scaler"),
        "feature_spec": fe["features"],
    }


def provenance(model_inputs: dict) -> dict:
    """The spec fields that tie a policy to this run's scaler, features, data and periods."""
    prov = run_provenance(model_inputs["scaler"], model_inputs["feature_spec"], model_inputs["train"])
    periods = {
        f"{split}_{edge}": str(getattr(model_inputs[split].index, op)().date())
        for split in ("train", "validation")
        for edge, op in (("start", "min"), ("end", "max"))
    }
    return {**prov, **periods}


def prepare(model_inputs: dict, env_params: dict, eval_params: dict, bundles: dict) -> dict:
    """``nodes.prepare_setup`` with this run's scaler, feature spec, training table and parameters."""
    return nodes.prepare_setup(
        env_params,
        eval_params,
        model_inputs["scaler"],
        {"features": model_inputs["feature_spec"]},
        model_inputs["train"],
        {"environment": env_params, "evaluation": eval_params},
        **bundles,
    )


def make_bundle(agent: str, model_inputs: dict, env_params: dict, seeds=SEEDS, hidden=(16,)) -> PolicyBundle:
    """A PolicyBundle of seeded, randomly initialised policies with a contract spec and this run's
    provenance (trained on model_inputs["train"], selected on model_inputs["validation"])."""
    config = EnvConfig.from_params(env_params)
    market = MarketArrays.from_frame(model_inputs["train"])
    obs_dim = BatchedTradingCore(market, config, 1, seed=0).obs_dim
    states, spec = {}, None
    for s in seeds:
        torch.manual_seed(1000 * len(agent) + s)
        if agent == "dqn":
            net = QPolicy(obs_dim, config.n_actions, hidden, "relu", algorithm=agent)
        else:
            net = ActorCriticPolicy(obs_dim, config.n_actions, hidden, "tanh", algorithm=agent)
            # larger actor output so random policies actually switch positions
            with torch.no_grad():
                net.actor[-1].weight.mul_(100.0)
        states[s] = {k: v.clone() for k, v in net.state_dict().items()}
        spec = dict(net.spec)
    spec.update(
        feature_names=list(market.feature_names),
        window=config.window,
        positions=list(config.positions),
        environment=config.to_params(),
        seeds=list(seeds),
        best_seed=seeds[0],
        validation_scores={str(s): 0.0 for s in seeds},
        validation_metric="sharpe",
        **provenance(model_inputs),
    )
    build_policy(spec)  # the spec rebuilds the network
    return PolicyBundle(spec=spec, state_dicts=states, version=f"2024-01-01T00.00.00.000Z-{agent}")


def make_history(agent: str, seeds=SEEDS) -> pd.DataFrame:
    """A training history shaped like ``training.<agent>.history`` (seed + TrainResult columns)."""
    rows = []
    for s in seeds:
        for i, step in enumerate(range(0, 2048, 256)):
            rows.append(
                {
                    "seed": s,
                    "step": step,
                    "episode_return": 0.01 * i - 0.005 * s,
                    "eval_score": 0.1 * i if i % 2 == 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)
