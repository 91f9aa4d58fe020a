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
