"""Reading a project's MLflow store back, as the tests compare runs."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

EXPERIMENT = "reinforce_strategy_creator"  # conf/base/mlflow.yml
#: what differs between runs of the same configuration on purpose: where jobs ran, the fold store
VARYING_PARAMS = ("compute.", "walk_forward.reuse_folds")


def client(root: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{root / 'data/09_tracking/mlflow.db'}")


def tracked_runs(root: Path) -> list[Run]:
    """The parent runs of the project's experiment, oldest first."""
    c = client(root)
    experiment = c.get_experiment_by_name(EXPERIMENT)
    runs = c.search_runs([experiment.experiment_id], max_results=1000)
    return sorted(
        (r for r in runs if "mlflow.parentRunId" not in r.data.tags), key=lambda r: r.info.start_time
    )


def run_tree(root: Path, run: Run) -> dict:
    """A run as comparable data: its parameters (the compute block aside), metrics, and its nested
    runs by name with their metrics and metric histories (values by step; timings left out)."""
    c = client(root)
    experiment = run.info.experiment_id
    children = c.search_runs([experiment], f"tags.mlflow.parentRunId = '{run.info.run_id}'", max_results=1000)
    return {
        "name": run.info.run_name,
        "params": {k: v for k, v in run.data.params.items() if not k.startswith(VARYING_PARAMS)},
        "metrics": run.data.metrics,
        "children": [
            {
                "name": child.info.run_name,
                "tags": {k: v for k, v in child.data.tags.items() if not k.startswith("mlflow.")},
                "metrics": child.data.metrics,
                "history": {
                    key: sorted((m.step, m.value) for m in c.get_metric_history(child.info.run_id, key))
                    for key in sorted(child.data.metrics)
                },
            }
            for child in sorted(children, key=lambda r: r.info.run_name)
        ],
    }
