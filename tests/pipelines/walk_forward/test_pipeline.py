"""The ``walk_forward`` stage: wiring, and the real ``kedro run`` on the embedded S&P 500."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from reinforce_strategy_creator.artifacts import artifact_sha256, versioned_artifact_path
from reinforce_strategy_creator.pipelines.walk_forward import create_pipeline
from reinforce_strategy_creator.pipelines.walk_forward.pipeline import deployment_inputs, fold_names
from tests.compute.conftest import dask_cluster  # noqa: F401 - a scheduler and two workers
from tests.support.project import catalog_config, copy_project, kedro
from tests.support.tracking import run_tree, tracked_runs


def test_one_namespace_per_fold_and_the_deployment_fold_only_when_deploying():
    pipe = create_pipeline()
    namespaces = {n.namespace for n in pipe.nodes if n.namespace}
    assert namespaces == {"walk_forward"} | {f"walk_forward.{f}" for f in fold_names()}
    deployed = {"champion", "feature_scaler", "model_input_train"}
    assert not deployed & pipe.all_outputs()
    deploying = create_pipeline(deploy=True) + deployment_inputs()
    assert "walk_forward.deployment" in {n.namespace for n in deploying.nodes}
    assert deployed <= deploying.all_outputs()
    # every fold's training histories in one table, the deployment fold's only when deploying
    for stage, extra in ((pipe, []), (deploying, ["walk_forward.deployment.result"])):
        collect = next(n for n in stage.nodes if n.name == "walk_forward.collect_training_histories")
        assert collect.inputs == [f"walk_forward.{f}.result" for f in fold_names()] + extra
        assert collect.outputs == ["walk_forward.training_history"]
    assert fold_names() == ["fold_1", "fold_2", "fold_3", "fold_4", "fold_5"]
    names = {n.name for n in pipe.nodes}
    assert {f"walk_forward.{n}" for n in ("plan_folds", "stitch", "judge", "plot_stitched_equity")} <= names
    # one node trains every fold (folds x seeds together); each fold's namespace selects its champion
    for stage, trained in ((pipe, fold_names()), (deploying, [*fold_names(), "deployment"])):
        (train,) = [n for n in stage.nodes if n.outputs == ["walk_forward.trained"]]
        assert train.name == "walk_forward.train_folds" and set(trained) <= train.tags
        selects = [n for n in stage.nodes if n.name.endswith(".select_champion")]
        assert sorted(n.namespace for n in selects) == sorted(f"walk_forward.{f}" for f in trained)
        assert all("walk_forward.trained" in n.inputs for n in selects)
    # every fold feeds the stitched record; the deployment fold does not
    stitch = next(n for n in pipe.nodes if n.name == "walk_forward.stitch")
    assert [i for i in stitch.inputs if i.endswith(".result")] == [
        f"walk_forward.{f}.result" for f in fold_names()
    ]


def test_every_dataset_of_the_stage_is_declared_with_a_layer():
    catalog = catalog_config()
    for name in (create_pipeline(deploy=True) + deployment_inputs()).datasets():
        if name.startswith("params:") or name == "primary_prices":
            continue
        factory = "walk_forward.{fold}.result" if re.fullmatch(r"walk_forward\.\w+\.result", name) else None
        entry = catalog.get(name) or catalog.get(factory)
        assert entry is not None, name
        assert entry["metadata"]["kedro-viz"]["layer"], name


ARGS = ("run", "--pipelines", "data_ingestion,walk_forward", "--env", "quick")
PARAMS = "--params=walk_forward.folds=2,training.common.seeds=[0]"
VERDICT = "data/07_model_output/walk_forward_verdict.json"


@pytest.fixture(scope="module")
def stage_runs(tmp_path_factory, dask_cluster) -> dict:  # noqa: F811
    """The stage's real runs, in one project copy and in this order: ``first`` (seeds [0]),
    ``again`` (seeds [1], another configuration on the same window), ``third`` (seeds [0] again),
    the full cycle under the walk-forward scheme with the first configuration (``full_cycle``,
    whose folds the fold store already holds), then the first configuration retrained on the
    ``processes`` backend and on a real Dask cluster of two workers. Each run's process and the
    verdict it wrote are kept; what the first run wrote is read before the next run overwrites it."""
    root = copy_project(tmp_path_factory.mktemp("walk_forward") / "project", envs=("base", "quick"))
    runs: dict = {"root": root}

    def run(name: str, *args: str) -> None:
        result = kedro(root, *args)
        assert result.returncode == 0, f"{name}: " + result.stderr[-3000:]
        runs[name] = result
        runs[f"{name}_verdict"] = json.loads((root / VERDICT).read_text())

    run("first", *ARGS, PARAMS)
    runs["folds"] = pd.read_csv(root / "data/08_reporting/walk_forward_folds.csv")
    runs["ledger_kinds"] = set(
        pd.read_parquet(root / "data/07_model_output/walk_forward_ledger.parquet")["kind"]
    )
    runs["png_size"] = (root / "data/08_reporting/walk_forward_stitched_equity.png").stat().st_size
    runs["report"] = (root / "data/08_reporting/walk_forward_report.html").read_text()
    run("again", *ARGS, PARAMS.replace("seeds=[0]", "seeds=[1]"))
    run("third", *ARGS, PARAMS)
    run(
        "full_cycle",
        "run",
        "--pipelines",
        "full_cycle",
        "--env",
        "quick",
        f"{PARAMS},evaluation.scheme=walk_forward",
    )
    retrain = f"{PARAMS},walk_forward.reuse_folds=false"
    run("processes", *ARGS, f"{retrain},compute.backend=processes,compute.workers=2")
    run(
        "dask",
        *ARGS,
        f"{retrain},compute.backend=dask,compute.address={dask_cluster},compute.dashboard=false",
    )
    return runs


@pytest.mark.slow
def test_kedro_run_writes_the_stitched_record_and_counts_its_gate_decisions(stage_runs):
    folds = stage_runs["folds"]
    assert list(folds["label"].astype(str)) == ["2016", "2017"]
    assert folds["champion"].notna().all()
    verdict = stage_runs["first_verdict"]
    assert verdict["decided_on"]["split"] == "walk_forward"
    assert verdict["decided_on"]["start"].startswith("2016-01") and verdict["decided_on"]["end"].startswith(
        "2017-12"
    )
    recon = verdict["reconciliation"]["procedure"]
    assert sum(recon["fold_pnl_cents"].values()) == recon["final_cents"] - recon["initial_cents"]
    assert stage_runs["ledger_kinds"] >= {"procedure", "agent_selected", "agent", "benchmark", "random"}
    assert stage_runs["png_size"] > 10_000
    report = stage_runs["report"]
    assert report.count("<img ") == 2 and ("PASSED" in report[:600] or "FAILED" in report[:600])
    # a second look at the same window is counted; another configuration raises the hurdle
    second = stage_runs["again_verdict"]
    assert second["window_reuse"]["earlier_decisions"] == 1
    assert second["deflation"]["n_configurations"] == 2
    # the first configuration again: every fold comes from the fold store, nothing is trained
    log = stage_runs["third"].stdout + stage_runs["third"].stderr
    assert log.count("loaded from the fold store") == 2 and ": trained" not in log
    again_verdict = stage_runs["third_verdict"]
    assert again_verdict["procedure"] == verdict["procedure"] and again_verdict["folds"] == verdict["folds"]
    assert again_verdict["window_reuse"]["earlier_decisions"] == 2


@pytest.mark.slow
def test_full_cycle_with_the_walk_forward_scheme_deploys_the_deployment_folds_champion(stage_runs):
    """``evaluation.scheme: walk_forward``: ingestion → walk_forward → deployment. The deployment
    fold (trained through 2016, selected on 2017) is registered with the stitched record's
    verdict and the shadow account paper-trades the held-back 2018 with it."""
    root, run = stage_runs["root"], stage_runs["full_cycle"]
    log = run.stdout + run.stderr
    ran = set(re.findall(r"Completed node: ([\w.]+)", log))
    assert {"walk_forward.plan_folds", "walk_forward.judge", "deployment.register_champion"} <= ran
    assert not any(n.startswith(("feature_engineering.", "training.", "evaluation.")) for n in ran), ran
    champion = json.loads((root / "data/07_model_output/champion.json").read_text())
    verdict = stage_runs["full_cycle_verdict"]
    assert champion["decided_on"] == "walk_forward" and champion["verdict"]["passed"] == verdict["passed"]
    assert champion["fold"]["validation"]["start"].startswith("2016-01")
    assert champion["fold"]["train"]["end"].startswith("2015-12")
    assert champion["policy_filepath"] == "data/06_models/walk_forward_policy"
    stored = versioned_artifact_path(root / champion["policy_filepath"], champion["policy_version"])
    assert champion["policy_sha256"] == artifact_sha256(stored)  # checked at load, then registered
    history = [json.loads(line) for line in (root / "data/07_model_output/registry.jsonl").open()]
    (registered,) = [e for e in history if e["event"] == "register"]
    assert registered["artifact_sha256"] == champion["policy_sha256"]
    assert registered["scored_on"]["split"] == "walk_forward"  # `models list`: procedure stitched
    assert registered["scored_on"]["end"] == verdict["decided_on"]["end"]
    scaler = json.loads((root / "data/05_model_input/feature_scaler.json").read_text())
    assert scaler["fit_end"].startswith("2015-12")  # the deployment fold's own training rows
    status = json.loads((root / "data/08_reporting/paper_status.json").read_text())
    shadow = status["shadow"]
    assert shadow["first_bar"].startswith("2018-01") and shadow["bars_processed_this_run"] > 200
    assert shadow["model"].startswith(f"{champion['agent']}-{champion['policy_version']}")


@pytest.mark.slow
def test_each_kedro_run_is_one_mlflow_run_with_the_same_tree_on_every_backend(stage_runs):
    """One parent run per ``kedro run`` (no duplicates), each fold a nested run; a second identical
    run records equal metrics; the folds retrained on processes and on a Dask cluster give the
    sequential run's tree: parameters, metrics, fold runs and their training curves (the compute
    block and the counts of looks at the window aside)."""
    runs = tracked_runs(stage_runs["root"])
    names = [r.info.run_name for r in runs]
    stage = "data_ingestion+walk_forward"
    assert names == [stage, stage, stage, "full_cycle", stage, stage]
    first, _, third, _, processes, dask = (run_tree(stage_runs["root"], r) for r in runs)
    assert [c["name"] for c in first["children"]] == ["fold_1", "fold_2"]
    assert first["children"][0]["history"], "training curves by step"
    stitched = ("procedure.", "agent.", "benchmark.")
    assert {k: v for k, v in third["metrics"].items() if k.startswith(stitched)} == {
        k: v for k, v in first["metrics"].items() if k.startswith(stitched)
    }
    assert third["children"] == first["children"]
    assert third["metrics"]["gate.earlier_decisions"] == first["metrics"]["gate.earlier_decisions"] + 2
    # what counts the looks at the window grows with every run (docs/metrics.md, "Gate")
    looks = {"gate.earlier_decisions", "gate.deflation_configurations", "gate.min_psr", "gate.psr_deflated"}
    looks |= {"gate.min_psr.passed", "gate.passed"}
    for other in (processes, dask):
        assert other["params"] == third["params"]
        assert other["children"] == third["children"]
        assert {k: v for k, v in other["metrics"].items() if k not in looks} == {
            k: v for k, v in third["metrics"].items() if k not in looks
        }
    assert [r.data.tags["compute.backend"] for r in (runs[4], runs[5])] == ["processes", "dask"]
