"""The training progress bar: live on a terminal, at most one line every 15 s in a log file."""

from __future__ import annotations

import io
import itertools
import re
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from reinforce_strategy_creator.agents import tracking
from reinforce_strategy_creator.agents.tracking import PROGRESS_LOG_INTERVAL_S, RunTracker
from reinforce_strategy_creator.agents.vec_env import Step


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _step(lanes: int) -> Step:
    zeros = torch.zeros(lanes)
    false = torch.zeros(lanes, dtype=torch.bool)
    return Step(
        obs=zeros[:, None],
        reward=torch.ones(lanes),
        terminated=false,
        truncated=false,
        next_obs=zeros[:, None],
        valid=~false,
    )


def _train(monkeypatch, stream, updates: int, seconds_per_update: float, lanes: int = 8) -> None:
    clock = Clock()
    monkeypatch.setattr(tracking, "time", SimpleNamespace(perf_counter=clock))
    tracker = RunTracker(
        nn.Linear(1, 1),
        lanes,
        torch.device("cpu"),
        total_steps=updates * lanes,
        eval_fn=None,
        eval_every=1,
        patience=None,
        progress=True,
        log_every=1,
        desc="ppo",
        stream=stream,
    )
    for update in range(1, updates + 1):
        clock.t += seconds_per_update
        tracker.on_step(_step(lanes))
        tracker.end_update(update, last=update == updates)
    tracker.finish()


@pytest.mark.parametrize("updates, seconds_per_update", [(300, 0.25), (1000, 0.01), (40, 7.0), (7, 100.0)])
def test_a_log_file_gets_at_most_one_line_every_15_seconds_and_a_final_line(
    monkeypatch, updates, seconds_per_update
):
    stream = io.StringIO()  # not a terminal
    _train(monkeypatch, stream, updates, seconds_per_update)
    text = stream.getvalue()
    assert "\r" not in text  # plain lines, no redraws
    lines = text.splitlines()
    elapsed = updates * seconds_per_update
    assert 1 <= len(lines) <= elapsed // PROGRESS_LOG_INTERVAL_S + 1
    # the elapsed time each line reports: consecutive lines are at least 15 s apart, except the
    # final line, which may follow the last periodic one at once
    stamps = [int(m) * 60 + int(s) for m, s in re.findall(r"\[(\d+):(\d+)<", text)]
    assert len(stamps) == len(lines)
    assert all(b - a >= PROGRESS_LOG_INTERVAL_S for a, b in itertools.pairwise(stamps[:-1]))
    if seconds_per_update < PROGRESS_LOG_INTERVAL_S:  # not silent either: a line per 15-s period
        assert len(lines) >= elapsed // (PROGRESS_LOG_INTERVAL_S + seconds_per_update)
    assert lines[-1].startswith("ppo: 100%") and f"{updates * 8}/{updates * 8}" in lines[-1]
    assert "sps=" in lines[-1]


def test_a_terminal_gets_a_live_bar(monkeypatch):
    stream = Terminal()
    _train(monkeypatch, stream, updates=50, seconds_per_update=0.01)
    assert stream.getvalue().count("\r") >= 50  # redrawn on every update
    assert "400/400" in stream.getvalue()


def test_no_progress_writes_nothing(monkeypatch, capsys):
    clock = Clock()
    monkeypatch.setattr(tracking, "time", SimpleNamespace(perf_counter=clock))
    tracker = RunTracker(
        nn.Linear(1, 1),
        2,
        torch.device("cpu"),
        total_steps=10,
        eval_fn=None,
        eval_every=1,
        patience=None,
        progress=False,
        log_every=1,
        desc="ppo",
    )
    for update in range(1, 6):
        clock.t += 100
        tracker.on_step(_step(2))
        tracker.end_update(update, last=update == 5)
    tracker.finish()
    assert capsys.readouterr() == ("", "")
