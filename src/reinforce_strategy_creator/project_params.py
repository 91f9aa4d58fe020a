"""The project's parameters as the current run sees them, for building pipelines from them.

Kedro pipelines are static, but which agents exist is a parameter (``training.<agent>``
blocks): adding an agent is adding a block, and the training and evaluation pipelines get one
namespace per agent (the kedro-viz demo-project's per-model templates). The pipeline registry
therefore reads the parameters. During ``kedro run``, ``kedro viz`` or a notebook session,
the hook :class:`~.hooks.RememberConfig` stores the session's config loader (with its ``--env``
and ``--params``) before the pipelines are built; without a session (tests, scripts) the
project's ``conf/base`` and ``conf/local`` are read.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .paths import project_root

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/local, conf/quick, ...) overrides single keys of a parameter block, not
    # the whole block: `quick` changes budgets and keeps every other setting of conf/base. (With
    # Kedro's default destructive merge, `--params environment.fill_price=...` under `--env quick`
    # would also replace the whole `environment` block by that one key.)
    "merge_strategy": {"parameters": "soft"},
    # kedro-mlflow's `mlflow.yml` (docs/tracking.md), read by the run's hook and `kedro models ...`
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]},
}
"""The config loader's arguments, for ``settings.py`` and for reading the parameters without a session."""

_SESSION: dict[str, Any] = {}  # "loader": the running session's config loader, set by the hook


def remember(config_loader: Any) -> None:
    """Called by the hook once the session's context exists."""
    _SESSION["loader"] = config_loader


def parameters(env: str | None = None) -> dict[str, Any]:
    """The raw (not yet validated) parameters of the current session, or, without a session or
    when ``env`` is given, of the project's ``conf/base`` overlaid with ``conf/<env>`` (default
    ``local``), merged the way ``kedro run --env`` merges them."""
    if _SESSION.get("loader") is not None and env is None:
        return dict(_SESSION["loader"]["parameters"])
    from kedro.config import OmegaConfigLoader

    root = project_root(Path(__file__).resolve().parent) or project_root()
    if root is None or not (root / "conf").is_dir():
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = OmegaConfigLoader(conf_source=str(root / "conf"), env=env, **CONFIG_LOADER_ARGS)
        return dict(loader["parameters"])


def agent_names() -> list[str]:
    """The agents configured under ``training`` (every key but ``common``), in their order."""
    training = parameters().get("training") or {}
    return [str(k) for k in training if k != "common"]
