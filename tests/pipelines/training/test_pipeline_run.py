"""The training pipeline (one namespaced instance per agent) run by SequentialRunner on a
catalog of memory and file datasets: every agent's artifact, history and curve are saved."""

from __future__ import annotations

import pandas as pd
import torch
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from reinforce_strategy_creator.artifacts import PolicyBundle
from reinforce_strategy_creator.datasets.policy_artifact import PolicyArtifactDataset
from reinforce_strategy_creator.pipelines.training import create_pipeline
from tests.support.training import AGENTS, COMMON, ENV

torch.set_num_threads(1)


def test_sequential_runner_runs_all_agents_and_saves_artifacts(tables, tmp_path):
    from kedro_datasets.matplotlib import MatplotlibDataset
    from kedro_datasets.pandas import ParquetDataset

    from reinforce_strategy_creator.features import feature_spec_sha256

    train, val, scaler = tables
    datasets = {
        "model_input_train": MemoryDataset(train),
        "model_input_validation": MemoryDataset(val),
        "feature_scaler": MemoryDataset(scaler),
        "params:environment": MemoryDataset(ENV),
    }
    datasets["params:training"] = MemoryDataset({"common": {**COMMON, "total_steps": 512}, **AGENTS})
    feature_spec = {"indicators": {"logret": {"periods": [1]}}}
    datasets["params:feature_engineering"] = MemoryDataset({"features": feature_spec})
    datasets["params:compute"] = MemoryDataset({"backend": "sequential"})
    for a in AGENTS:
        datasets[f"training.{a}.policy"] = PolicyArtifactDataset(
            filepath=str(tmp_path / f"{a}_policy"), version=None
        )
        datasets[f"training.{a}.history"] = ParquetDataset(filepath=str(tmp_path / f"{a}_history.parquet"))
        datasets[f"training.{a}.learning_curve"] = MatplotlibDataset(
            filepath=str(tmp_path / f"{a}_curve.png")
        )
    catalog = DataCatalog(datasets=datasets)
    SequentialRunner().run(create_pipeline(agents=list(AGENTS)), catalog)
    for a in AGENTS:
        bundle = PolicyArtifactDataset(filepath=str(tmp_path / f"{a}_policy")).load()
        assert isinstance(bundle, PolicyBundle) and bundle.spec["algorithm"] == a and bundle.seeds == [0, 1]
        assert bundle.spec["feature_spec_sha256"] == feature_spec_sha256(feature_spec)
        hist = pd.read_parquet(tmp_path / f"{a}_history.parquet")
        assert sorted(hist["seed"].unique()) == [0, 1] and hist["eval_score"].notna().any()
        png = (tmp_path / f"{a}_curve.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
