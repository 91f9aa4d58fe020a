"""The evaluation pipeline end to end with SequentialRunner on real S&P 500 model inputs,
through the project's own catalog entries (file paths moved under tmp_path)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from reinforce_strategy_creator.evaluation.results import FIGURES
from reinforce_strategy_creator.pipelines.evaluation import create_pipeline
from tests.support.evaluation import CONF, make_history
from tests.support.project import catalog_config

AGENTS = ("ppo", "a2c", "dqn")


def _catalog(tmp_path, model_inputs, bundles, env_params, eval_params, test=None):
    names = yaml.safe_load((CONF / "catalog_evaluation.yml").read_text())
    config = catalog_config(*names)
    for entry in config.values():
        if "filepath" in entry:
            entry["filepath"] = str(tmp_path / entry["filepath"])
    catalog = DataCatalog.from_config(config)
    catalog["model_input_train"] = MemoryDataset(model_inputs["train"])
    catalog["model_input_validation"] = MemoryDataset(model_inputs["validation"])
    prices = model_inputs["prices"]
    if test is not None:
        prices = prices.copy()
        prices.loc[test.index, list(prices.columns)] = test[list(prices.columns)].to_numpy()
    catalog["model_input_test"] = MemoryDataset(model_inputs["test"] if test is None else test)
    catalog["primary_prices"] = MemoryDataset(prices)
    catalog["feature_scaler"] = MemoryDataset(model_inputs["scaler"])
    catalog["params:environment"] = MemoryDataset(env_params)
    catalog["params:evaluation"] = MemoryDataset(eval_params)
    catalog["params:feature_engineering"] = MemoryDataset({"features": model_inputs["feature_spec"]})
    catalog["parameters"] = MemoryDataset({"environment": env_params, "evaluation": eval_params})
    for a in AGENTS:
        catalog[f"training.{a}.policy"] = MemoryDataset(bundles[a], copy_mode="assign")
        catalog[f"training.{a}.history"] = MemoryDataset(make_history(a))
    return catalog


def run_pipeline(tmp_path, model_inputs, bundles, env_params, eval_params, test=None):
    catalog = _catalog(tmp_path, model_inputs, bundles, env_params, eval_params, test)
    SequentialRunner().run(create_pipeline(agents=AGENTS), catalog)
    return catalog


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def run(tmp_path_factory, model_inputs, bundles, env_params, _eval_params):
    tmp = tmp_path_factory.mktemp("evaluation")
    return tmp, run_pipeline(tmp, model_inputs, bundles, env_params, _eval_params)


def test_outputs_written_and_well_formed(run, model_inputs, env_params, _eval_params):
    tmp, catalog = run
    out = tmp / "data"
    champion = json.loads((out / "07_model_output" / "champion.json").read_text())
    verdict = json.loads((out / "08_reporting" / "evaluation_verdict.json").read_text())
    for key in (
        "agent",
        "seed",
        "policy_version",
        "policy_filepath",
        "policy_sha256",
        "validation_metrics",
        "test_metrics",
        "verdict_passed",
    ):
        assert key in champion
    assert champion["agent"] in AGENTS and champion["verdict_passed"] == verdict["passed"]
    assert champion["policy_version"] == f"2024-01-01T00.00.00.000Z-{champion['agent']}"
    assert champion["policy_filepath"] is None  # in-memory bundles have no catalog folder
    assert champion["policy_sha256"] is None  # nor files to hash
    assert set(verdict["rules"]) == {"min_sharpe", "max_drawdown", "min_psr", "beats_buy_and_hold"}
    assert all({"value", "threshold", "passed"} <= set(r) for r in verdict["rules"].values())
    assert len(verdict["candidates_on_validation"]) == 3 * 2 + 3  # agent × seed and each seed ensemble
    # the verdict's "passed" is the gate on the champion's test record
    assert verdict["passed"] == all(r["passed"] for r in verdict["rules"].values())
    assert verdict["decided_on"]["split"] == "test"
    assert verdict["rules"]["min_sharpe"]["value"] == pytest.approx(champion["test_metrics"]["sharpe"])
    # and the decision is recorded in the registry file, for the next verdict on this window
    registry = [
        json.loads(line) for line in (out / "07_model_output" / "registry.jsonl").read_text().splitlines()
    ]
    assert [e["event"] for e in registry] == ["gate_decision"] and registry[0]["passed"] == verdict["passed"]

    # ledgers: every agent x seed and every benchmark, on both splits, same capital
    for split in ("validation", "test"):
        ledger = pd.read_parquet(out / "07_model_output" / f"evaluation_{split}_ledger.parquet")
        runs = ledger.groupby(["kind", "run"])["seed"].nunique().to_dict()
        assert runs[("random", "random")] == _eval_params["benchmarks"]["random_seeds"]
        assert all(runs[("agent", a)] == 2 for a in AGENTS)
        assert all(runs[("ensemble", a)] == 1 for a in AGENTS)  # each agent's seed ensemble
        assert all(runs[("benchmark", b)] == 1 for b in ("buy_and_hold", "flat", "sma_crossover", "momentum"))
        first = ledger.sort_values("bar").groupby(["run", "seed"])["equity"].first()
        assert (first == env_params["initial_capital"]).all()
        metrics = pd.read_csv(out / "08_reporting" / f"evaluation_{split}_metrics.csv")
        assert len(metrics) == 3 * 2 + 3 + 4 + 100
        agents = metrics[metrics["kind"].isin(["agent", "ensemble"])]
        assert agents[["psr", "dsr", "random_percentile"]].notna().all().all()
        assert metrics["periods_per_year"].eq(252).all()

    summary = pd.read_csv(out / "08_reporting" / "evaluation_seed_summary.csv")
    assert {"sharpe_mean", "sharpe_std", "sharpe_min", "sharpe_max", "n_seeds"} <= set(summary.columns)
    assert len(summary) == 6
    ranking = pd.read_csv(out / "08_reporting" / "evaluation_ranking.csv")
    assert list(ranking["rank"]) == [1, 2, 3]
    json.loads((out / "08_reporting" / "evaluation_metrics.json").read_text())
    random = json.loads((out / "08_reporting" / "evaluation_random_policy.json").read_text())
    assert random["n_seeds"] == 100 and random["test"]["sharpe_p5"] <= random["test"]["sharpe_p95"]

    for name in FIGURES:
        png = out / "08_reporting" / f"evaluation_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    html = (out / "08_reporting" / "evaluation_report.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES)
    assert not re.search(r"(src|href)=['\"]https?:", html) and "<script" not in html
    assert "commission_bps" in html and "Champion" in html


def test_pipeline_is_namespaced_and_reads_the_train_split_only_for_its_fingerprint():
    """Evaluation never replays the training split: only prepare_setup reads it, to fingerprint the
    data every policy must have been trained on (provenance)."""
    p = create_pipeline(agents=AGENTS)
    assert all(n.name.startswith("evaluation.") for n in p.nodes)
    readers = [n.name for n in p.nodes if "model_input_train" in n.inputs]
    assert readers == ["evaluation.prepare_setup"]
    assert {"champion", "evaluation_verdict"} <= p.all_outputs()


def test_perturbing_test_data_changes_test_metrics_not_the_champion(
    run, tmp_path, model_inputs, bundles, env_params, _eval_params
):
    """Whole pipeline again with the test period's prices moved: test metrics change, the
    champion (chosen on validation) does not; the verdict is decided on the test record, so it
    reflects the new test numbers."""
    _, base = run
    test = model_inputs["test"].copy()
    rng = np.random.default_rng(5)
    factor = np.exp(np.cumsum(rng.normal(0, 0.01, len(test))))
    for col in ("Open", "High", "Low", "Close"):
        test[col] = test[col] * factor
    other = run_pipeline(tmp_path, model_inputs, bundles, env_params, _eval_params, test=test)
    a, b = base.load("champion"), other.load("champion")
    assert (a["agent"], a["seed"], a["validation_metrics"]) == (
        b["agent"],
        b["seed"],
        b["validation_metrics"],
    )
    assert a["test_metrics"]["total_return"] != b["test_metrics"]["total_return"]
    va, vb = base.load("evaluation_verdict"), other.load("evaluation_verdict")
    assert va["candidates_on_validation"] == vb["candidates_on_validation"]
    assert va["rules"]["min_sharpe"]["value"] == pytest.approx(a["test_metrics"]["sharpe"])
    assert vb["rules"]["min_sharpe"]["value"] == pytest.approx(b["test_metrics"]["sharpe"])
    pd.testing.assert_frame_equal(
        base.load("evaluation.validation_metrics"), other.load("evaluation.validation_metrics")
    )
