"""Kedro project settings. Configuration lives in ``conf/``; nothing is configured in code."""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}

from reinforce_strategy_creator.hooks import ClearInputErrors  # noqa: E402

# Bad input is reported as its message (which names the file/column/row/parameter), not as a
# traceback; genuine bugs keep their traceback. See hooks.py.
HOOKS = (ClearInputErrors(),)
