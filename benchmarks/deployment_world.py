"""A small, real deployment world for benchmarks/bench_paper.py and the deployment pipeline tests
(importable by subprocess workers).

Real S&P 500 bars from the embedded CSV (2016-01 .. 2018-02), a training table and scaler
fitted on 2016 through the feature_engineering library, a tiny PPO-shaped policy artifact
saved through ``PolicyArtifactDataset``, champion/verdict JSON as the evaluation writes
them, and the project's own ``catalog_deployment.yml`` with paths moved into a tmp folder.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, Version
from kedro.runner import SequentialRunner

from reinforce_strategy_creator.agents import build_policy
from reinforce_strategy_creator.artifacts import PolicyBundle
from reinforce_strategy_creator.datasets.policy_artifact import PolicyArtifactDataset
from reinforce_strategy_creator.features import (
    build_model_input,
    compute_features,
    feature_columns,
    feature_spec_sha256,
    fit_scaler,
    max_lookback,
    scaler_sha256,
    scaler_to_dict,
)
from reinforce_strategy_creator.market_data import normalise_prices
from reinforce_strategy_creator.pipelines.deployment import create_pipeline

ROOT = Path(__file__).resolve().parents[1]
SP500 = ROOT / "data" / "01_raw" / "sp500_daily_1999_2018.csv"
# two policy versions the tests register, promote and roll back
V1, V2 = "2026-01-01T00.00.00.000Z", "2026-02-01T00.00.00.000Z"
SPLITS = {
    "train": {"start": None, "end": "2016-12-31"},
    "validation": {"start": "2017-01-01", "end": "2017-06-30"},
    "test": {"start": "2017-07-01", "end": "2017-12-31"},
}


def _base_config(key: str) -> dict[str, Any]:
    """The project's conf/base ``parameters`` or ``catalog`` (globals resolved), a deep copy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = OmegaConfigLoader(conf_source=str(ROOT / "conf"), base_env="base", default_run_env="base")
        return copy.deepcopy(dict(loader[key]))


def project_params() -> dict[str, Any]:
    return _base_config("parameters")


def raw_rows(start: str = "2015-06-01", end: str = "2018-02-27") -> pd.DataFrame:
    raw = pd.read_csv(SP500, dtype=str, keep_default_na=False)
    dates = pd.to_datetime(raw["Date"], format="%m/%d/%Y")
    return raw[(dates >= start) & (dates <= end)].reset_index(drop=True)


def write_feed(path: Path, end: str = "2018-02-27", start: str = "2015-06-01") -> None:
    raw_rows(start=start, end=end).to_csv(path, index=False)


class World:
    """``full_history=False``: train on 2016 (fast tests); ``True``: the project's own splits
    (train through 2012) and the whole 1999-2018 feed, as a real deployment."""

    def __init__(
        self, folder: Path, params: dict[str, Any] | None = None, full_history: bool = False
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.params = params or project_params()
        self.full_history = full_history or (self.folder / "FULL_HISTORY").exists()
        if self.full_history:
            (self.folder / "FULL_HISTORY").touch()
        else:
            self.params["feature_engineering"]["splits"] = SPLITS
        self.feed = self.folder / "feed.csv"
        if not self.feed.exists():
            write_feed(self.feed, start="1999-01-01" if self.full_history else "2015-06-01")
        self.registry = self.folder / "registry.jsonl"
        self.account = self.folder / "account"
        self.shadow_account = self.folder / "shadow_account"
        self.status = self.folder / "paper_status.json"
        self.png = self.folder / "paper_account_equity.png"
        self.champion = self.folder / "champion.json"
        self.verdict = self.folder / "evaluation_verdict.json"
        self.scaler_path = self.folder / "feature_scaler.json"
        self.train_path = self.folder / "model_input_train.parquet"
        self.policy_dir = self.folder / "ppo_policy"
        if not self.train_path.exists():
            self._fit_training_side()

    # -- training side, as feature_engineering produces it --------------------------------
    def _fit_training_side(self) -> None:
        spec = self.params["feature_engineering"]["features"]
        if self.full_history:
            train_end = self.params["feature_engineering"]["splits"]["train"]["end"]
            prices, _ = normalise_prices(raw_rows(start="1999-01-01", end=train_end), source="sp500")
        else:
            prices, _ = normalise_prices(raw_rows(end="2016-12-31"), source="sp500")
        feats = compute_features(prices, spec).iloc[max_lookback(spec) :]
        scaler = fit_scaler(feats, "standard")
        scaler_dict = scaler_to_dict(
            scaler,
            feature_columns(feats),
            fit_rows=len(feats),
            fit_start=feats.index[0],
            fit_end=feats.index[-1],
        )
        self.scaler_path.write_text(json.dumps(scaler_dict))
        build_model_input(feats, prices, scaler_dict).to_parquet(self.train_path)

    @property
    def feature_names(self) -> list[str]:
        return json.loads(self.scaler_path.read_text())["feature_names"]

    def make_policy(
        self,
        version: str,
        torch_seed: int,
        agent: str = "ppo",
        scaler_sha: str | None = None,
        spec_overrides: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> None:
        """A policy artifact recording what training records (scaler and feature-spec
        fingerprints, environment, training and validation periods); ``spec_overrides`` /
        ``drop`` change that record to test deployment's provenance checks."""
        env = self.params["environment"]
        W, n_state = env["window"], 3
        spec = {
            "kind": "actor_critic",
            "algorithm": agent,
            "obs_dim": W * len(self.feature_names) + n_state,
            "n_actions": len(env["positions"]),
            "network": {"hidden_sizes": [16], "activation": "tanh"},
        }
        torch.manual_seed(torch_seed)
        policy = build_policy(spec)
        with torch.no_grad():  # make the random policy decisive enough to trade
            for p in policy.parameters():
                p.mul_(30.0)
        train_index = pd.read_parquet(self.train_path).index
        validation = self.params["feature_engineering"]["splits"]["validation"]
        spec.update(
            feature_names=self.feature_names,
            window=W,
            positions=env["positions"],
            environment=copy.deepcopy(env),
            seeds=[0],
            best_seed=0,
            scaler_sha256=scaler_sha or scaler_sha256(json.loads(self.scaler_path.read_text())),
            feature_spec_sha256=feature_spec_sha256(self.params["feature_engineering"]["features"]),
            train_start=train_index.min().isoformat(),
            train_end=train_index.max().isoformat(),
            validation_start=pd.Timestamp(validation["start"]).isoformat(),
            validation_end=pd.Timestamp(validation["end"]).isoformat(),
        )
        spec.update(copy.deepcopy(spec_overrides or {}))
        for key in drop:
            spec.pop(key, None)
        bundle = PolicyBundle(spec=spec, state_dicts={0: policy.state_dict()})
        PolicyArtifactDataset(str(self.folder / f"{agent}_policy"), version=Version(None, version)).save(
            bundle
        )

    def write_evaluation(self, version: str, passed: bool, agent: str = "ppo", sharpe: float = 1.0) -> None:
        filepath = str(self.folder / f"{agent}_policy")
        evaluated = PolicyArtifactDataset(filepath, version=Version(version, None)).load()  # checked
        champion = {
            "agent": agent,
            "seed": 0,
            "policy_version": version,
            "policy_filepath": filepath,
            "policy_sha256": evaluated.sha256,
            "validation_metrics": {"sharpe": sharpe},
            "test_metrics": {"sharpe": sharpe / 2},
            "verdict_passed": passed,
        }
        verdict = {
            "passed": passed,
            "champion": champion,
            "rules": {"min_sharpe": {"value": sharpe, "threshold": 0.5, "passed": passed}},
            "candidates": [],
        }
        champion["verdict"] = {"passed": passed, "rules": verdict["rules"]}  # as evaluation writes it
        self.champion.write_text(json.dumps(champion))
        self.verdict.write_text(json.dumps(verdict))

    # -- the Kedro side -----------------------------------------------------------------
    def catalog(self) -> DataCatalog:
        cfg = {k: v for k, v in _base_config("catalog").items() if k.startswith("deployment.")}
        cfg["deployment.market_feed"]["filepath"] = str(self.feed)
        for name in ("deployment.production_model", "deployment.shadow_model", "deployment.model_registry"):
            cfg[name]["filepath"] = str(self.registry)
        for name in ("deployment.account", "deployment.account_update"):
            cfg[name]["filepath"] = str(self.account)
        for name in ("deployment.shadow_account", "deployment.shadow_account_update"):
            cfg[name]["filepath"] = str(self.shadow_account)
        cfg["deployment.paper_status"]["filepath"] = str(self.status)
        cfg["deployment.account_equity_png"]["filepath"] = str(self.png)
        cfg.update(
            {
                "champion": {"type": "json.JSONDataset", "filepath": str(self.champion)},
                "evaluation_verdict": {"type": "json.JSONDataset", "filepath": str(self.verdict)},
                "feature_scaler": {"type": "json.JSONDataset", "filepath": str(self.scaler_path)},
                "model_input_train": {"type": "pandas.ParquetDataset", "filepath": str(self.train_path)},
            }
        )
        catalog = DataCatalog.from_config(cfg)
        for key in ("deployment", "environment", "feature_engineering"):
            catalog[f"params:{key}"] = copy.deepcopy(self.params[key])
        return catalog

    def run(
        self, tags: list[str] | None = None, hook_manager=None, to_nodes: list[str] | None = None
    ) -> dict[str, Any] | None:
        """One ``deployment`` run (``tags``: only those nodes; ``to_nodes``: stop after them, as
        a run killed there). Returns the status file, or ``None`` if there is none."""
        pipe = create_pipeline()
        if tags:
            pipe = pipe.only_nodes_with_tags(*tags)
        if to_nodes:
            pipe = pipe.to_nodes(*to_nodes)
        logging.getLogger("kedro").setLevel(logging.WARNING)
        SequentialRunner().run(pipe, self.catalog(), hook_manager=hook_manager)
        return json.loads(self.status.read_text()) if self.status.exists() else None
