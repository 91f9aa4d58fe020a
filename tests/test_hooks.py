"""Bad input prints its message, not a traceback; bugs keep their traceback."""

from __future__ import annotations

import sys

import pytest
from kedro.io.core import DatasetError

from reinforce_strategy_creator import hooks
from reinforce_strategy_creator.market_data import DataValidationError


def test_project_value_errors_and_dataset_errors_are_input_errors():
    assert hooks.is_input_error(DataValidationError("f.csv, column 'Low': bad"))
    assert hooks.is_input_error(DatasetError("Failed while loading data from dataset"))
    assert not hooks.is_input_error(ValueError("a bug inside numpy, say"))
    assert not hooks.is_input_error(KeyError("a bug"))


@pytest.mark.parametrize("debug", [None, "1"])
def test_excepthook_prints_message_only_for_input_errors(monkeypatch, capsys, debug):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: seen.append(a[1]))
    if debug:
        monkeypatch.setenv("RSC_TRACEBACK", debug)
    else:
        monkeypatch.delenv("RSC_TRACEBACK", raising=False)
    hooks.install_excepthook()
    hooks.install_excepthook()  # idempotent: wraps once

    err = DataValidationError("prices.csv, column 'Close': not numeric at row 3")
    sys.excepthook(type(err), err, None)
    bug = RuntimeError("bug")
    sys.excepthook(type(bug), bug, None)

    stderr = capsys.readouterr().err
    if debug:
        assert seen == [err, bug] and stderr == ""
    else:
        assert seen == [bug]
        assert "Error: DataValidationError: prices.csv, column 'Close'" in stderr


def test_every_error_class_of_the_package_is_an_input_error():
    """One base for bad input: the hook recognises it by type, not by module name."""
    import importlib
    import inspect
    import pkgutil

    import reinforce_strategy_creator as pkg
    from reinforce_strategy_creator.errors import InputError

    found = {}
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__.startswith(pkg.__name__):
                found[f"{obj.__module__}.{name}"] = obj
    assert len(found) > 15
    not_input = sorted(k for k, v in found.items() if not issubclass(v, InputError))
    assert not_input == [], f"error classes that are not InputError: {not_input}"


def test_kedro_parameter_validation_errors_print_our_message_without_kedros_wrapping():
    from kedro.validation.exceptions import ParameterValidationError

    exc = ParameterValidationError(
        "Parameter validation failed:\n- Parameter 'environment': Failed to instantiate EnvConfig for "
        "parameter "
        "'environment': environment.window: must be a positive integer (got 0). Fix it in ..."
    )
    assert hooks.is_input_error(exc)
    text = hooks.format_input_error(exc)
    assert (
        "- environment.window: must be a positive integer (got 0)" in text
        and "Failed to instantiate" not in text
    )


@pytest.mark.slow
def test_a_bad_parameter_stops_kedro_run_before_any_node_with_one_clear_line(tmp_path):
    """Typed parameter blocks are validated when the run starts: no node runs, no traceback."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    from tests.support.project import PROJECT_ROOT

    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    shutil.copytree(PROJECT_ROOT / "conf" / "base", root / "conf" / "base")
    shutil.copy(PROJECT_ROOT / "conf" / "logging.yml", root / "conf" / "logging.yml")
    (root / "conf" / "local").mkdir()
    shutil.copytree(
        PROJECT_ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    shutil.copytree(PROJECT_ROOT / "data" / "01_raw", root / "data" / "01_raw")
    kedro = Path(sys.executable).with_name("kedro")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "RSC_TRACEBACK": ""}
    run = subprocess.run(
        [
            str(kedro),
            "run",
            "--pipelines",
            "feature_engineering",
            "--params",
            "environment.window=0,training.ppo.gamma=2",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode != 0
    assert "environment.window: must be a positive integer (got 0)" in run.stderr
    assert "Traceback (most recent call last)" not in run.stderr and "Failed to instantiate" not in run.stderr
    assert not (root / "data" / "04_feature").exists() or not any((root / "data" / "04_feature").iterdir())


def test_the_runs_executor_is_opened_before_the_first_node_and_closed_after_the_run():
    """A bad compute.address stops the run before any node; a good block opens one shared executor."""
    from reinforce_strategy_creator.compute import ComputeConnectionError, executor

    class Pipe:
        def __init__(self, inputs):
            self._inputs = set(inputs)

        def inputs(self):
            return self._inputs

    class Catalog:
        def __init__(self, compute):
            self.compute = compute

        def load(self, name):
            assert name == "params:compute"
            return self.compute

    hook = hooks.CloseExecutors()
    executor.close_shared_executors()  # those earlier tests in this process opened (node tests)
    hook.before_pipeline_run(Pipe({"primary_prices"}), Catalog(None))  # no training node: nothing opened
    assert executor._OPEN == {}
    hook.before_pipeline_run(Pipe({"params:compute"}), Catalog({"backend": "sequential"}))
    (opened,) = executor._OPEN.values()
    hook.after_pipeline_run()
    assert opened.closed and executor._OPEN == {}
    bad = {"backend": "dask", "address": "tcp://127.0.0.1:9", "connect_timeout_s": 1}
    with pytest.raises(ComputeConnectionError, match="compute.address"):
        hook.before_pipeline_run(Pipe({"params:compute"}), Catalog(bad))
