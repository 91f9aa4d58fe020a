"""Experiment tracking in MLflow (docs/tracking.md): what a run records (``record``), writing it
from the driver (``store``), where it goes (``config``) and the model registry's mirror
(``mirror``). Kedro runs are tracked by the project's hook (``hooks.TrackRuns``), built on
kedro-mlflow's; this package does not import Kedro."""
