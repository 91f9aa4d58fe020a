"""Kedro project settings. Configuration lives in ``conf/``; nothing is configured in code."""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/local, conf/quick, ...) overrides single keys of a parameter block, not
    # the whole block: `quick` changes budgets and keeps every other setting of conf/base. (With
    # Kedro's default destructive merge, `--params environment.fill_price=...` under `--env quick`
    # would also replace the whole `environment` block by that one key.)
    "merge_strategy": {"parameters": "soft"},
}

from reinforce_strategy_creator.hooks import ClearInputErrors, CloseExecutors, RecordStudyLooks  # noqa: E402

# Bad input is reported as its message (which names the file/column/row/parameter), not as a
# traceback; genuine bugs keep their traceback. The run's compute executor is opened before the
# first node and closed after the run. A tuning study that stops with an error still records its
# trials' looks at the validation windows. See hooks.py.
HOOKS = (ClearInputErrors(), CloseExecutors(), RecordStudyLooks())
