"""Kedro project settings. Configuration lives in ``conf/``; nothing is configured in code."""

from kedro.config import OmegaConfigLoader

from reinforce_strategy_creator import project_params
from reinforce_strategy_creator.hooks import (
    ClearInputErrors,
    CloseExecutors,
    RecordStudyLooks,
    TrackRuns,
)

CONFIG_LOADER_CLASS = OmegaConfigLoader
# base env, local run env, soft merge of parameter blocks: the same arguments project_params reads
# the parameters with when there is no session
CONFIG_LOADER_ARGS = project_params.CONFIG_LOADER_ARGS

# Bad input is reported as its message (which names the file/column/row/parameter), not as a
# traceback; genuine bugs keep their traceback. The run's compute executor is opened before the
# first node and closed after the run. A tuning study that stops with an error still records its
# trials' looks at the validation windows. See hooks.py.
# Every run is an MLflow run (kedro-mlflow's hook with the project's rules, hooks.TrackRuns, which
# replaces the plugin's own registration). Hooks run last-registered first: TrackRuns reads the
# session's parameters after ClearInputErrors has handed them to the pipeline registry.
HOOKS = (TrackRuns(), ClearInputErrors(), CloseExecutors(), RecordStudyLooks())
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow")
