"""The ``tuning`` stage: wiring, and the real ``kedro run`` whose study the walk-forward judge counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reinforce_strategy_creator.pipelines.tuning import create_pipeline
from tests.support.project import catalog_config, copy_project, kedro
from tests.support.tracking import run_tree, tracked_runs


def test_the_stage_is_registered_and_every_dataset_has_a_layer():
    # find_pipelines registers every pipelines/<name>/ package exposing create_pipeline (the real
    # `kedro run --pipelines tuning` is the slow test below); no global Kedro state is touched here
    from reinforce_strategy_creator import pipelines

    assert (Path(pipelines.__file__).parent / "tuning" / "__init__.py").is_file()
    pipe = create_pipeline()
    assert [n.name for n in pipe.nodes] == ["tuning.run_study"]
    assert pipe.inputs() >= {"primary_prices", "params:tuning", "params:training", "params:compute"}
    catalog = catalog_config()
    for name in pipe.all_outputs():
        entry = catalog.get(name)
        assert entry is not None, name
        assert entry["metadata"]["kedro-viz"]["layer"], name


@pytest.mark.slow
def test_kedro_run_tuning_writes_its_outputs_and_the_walk_forward_judge_counts_the_study(tmp_path):
    root = copy_project(tmp_path / "project", envs=("base", "quick"))
    tune = kedro(
        root,
        "run",
        "--pipelines",
        "data_ingestion,tuning",
        "--env",
        "quick",
        "--params=tuning.n_trials=3,tuning.folds=2,tuning.total_steps=1024,tuning.seeds=[0],"
        "tuning.study_name=smoke",
    )
    assert tune.returncode == 0, tune.stderr[-3000:]
    best = yaml.safe_load((root / "data/07_model_output/tuning/best_params_ppo.yml").read_text())
    assert set(best["training"]["ppo"]) == {"learning_rate", "gamma", "gae_lambda", "ent_coef"}
    summary = json.loads((root / "data/07_model_output/tuning/study_smoke.json").read_text())
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 3
    assert (root / "data/08_reporting/tuning/history_smoke.png").stat().st_size > 5_000
    assert (root / "data/06_models/tuning/smoke.journal").exists()
    (study,) = tracked_runs(root)[-1:]  # the study is the run, each trial a nested run (docs/tracking.md)
    tree = run_tree(root, study)
    assert study.data.metrics["study.trials_counted"] == summary["trials_counted"] == 3
    assert study.data.tags["study.name"] == "smoke"
    assert sorted(c["name"] for c in tree["children"]) == ["trial 0", "trial 1", "trial 2"]
    assert all(c["tags"]["state"] in ("COMPLETE", "PRUNED") for c in tree["children"])
    wf = kedro(
        root,
        "run",
        "--pipelines",
        "walk_forward",
        "--env",
        "quick",
        "--params=walk_forward.folds=2,training.common.seeds=[0]",
    )
    assert wf.returncode == 0, wf.stderr[-3000:]
    verdict = json.loads((root / "data/07_model_output/walk_forward_verdict.json").read_text())
    # the study validated on 2015 and 2016; the stitched window is 2016-2017: 3 looks at it
    assert verdict["selection"]["tuning_trials"] == 3
    assert verdict["deflation"]["n_configurations"] == 1 + 3
    assert verdict["selection"]["tuning_studies"][0]["study_name"] == "smoke"
    assert tracked_runs(root)[-1].data.metrics["gate.tuning_trials"] == 3
