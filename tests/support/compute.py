"""Job functions and helpers for the executor tests (top level, so that worker processes import them)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from reinforce_strategy_creator.agents import TrainingDivergedError
from reinforce_strategy_creator.training import train_seeds_job

TIMING_COLUMNS = ("steps_per_s",)


#: How many times this process unpickled the :class:`Counted` data of each token.
UNPICKLED: dict[str, int] = {}


@dataclass(frozen=True)
class Counted:
    """Shared data that counts, in each process, how many times it was unpickled there."""

    token: str
    value: Any

    def __reduce__(self) -> tuple:
        return (_unpickle_counted, (self.token, self.value))


def _unpickle_counted(token: str, value: Any) -> Counted:
    UNPICKLED[token] = UNPICKLED.get(token, 0) + 1
    return Counted(token, value)


def echo(payload: Any, shared: Any) -> dict[str, Any]:
    """What the job saw, and where it ran; ``unpickled``: for :class:`Counted` shared data, how
    many times this job's process has unpickled it so far."""
    unpickled = UNPICKLED.get(shared.token, 0) if isinstance(shared, Counted) else None
    return {"payload": payload, "shared": shared, "unpickled": unpickled, "pid": os.getpid(), "steps": 10}


def diverge(payload: Any, shared: Any) -> None:
    """A job whose own code raises (an exception with a custom ``__init__``)."""
    raise TrainingDivergedError("ppo", 7, 3, "policy_loss", float("nan"))


def diverge_counted(payload: str, shared: Any) -> None:
    """:func:`diverge`, after appending a line to the file ``payload`` (one line per attempt)."""
    with open(payload, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    diverge(payload, shared)


def die_once(payload: dict[str, Any], shared: Any) -> Any:
    """Kill this worker process on the first attempt of the job that carries a ``marker`` path (the
    file records that attempt), then do the job (``payload["job"]`` with :func:`train_seeds_job`,
    else :func:`echo`)."""
    marker = payload.get("marker")
    if marker is not None and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)
    if "job" in payload:
        return train_seeds_job(payload["job"], shared)
    return echo(payload["value"], shared)


def died(marker: Path) -> int:
    """The pid that :func:`die_once` recorded, checked to be gone (it was not the driver)."""
    pid = int(Path(marker).read_text())
    assert pid != os.getpid()
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        time.sleep(0.1)
    raise AssertionError(f"worker {pid} is still alive")


def always_die(payload: Any, shared: Any) -> None:
    os._exit(1)


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A training job's result with the timing columns dropped from its histories."""
    members = [{**r, "history": r["history"].drop(columns=list(TIMING_COLUMNS))} for r in result["members"]]
    return {**result, "members": members}


def assert_same_results(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Training job results equal: the same safetensors bytes, scores, steps, specs and histories."""
    assert len(a) == len(b)
    for xa, yb in zip(a, b):
        x, y = comparable(xa), comparable(yb)
        assert x["agent"] == y["agent"] and x["steps"] == y["steps"] and x["policy_spec"] == y["policy_spec"]
        members = [[(r["table"], r["seed"]) for r in z["members"]] for z in (x, y)]
        assert members[0] == members[1]
        for rx, ry in zip(x["members"], y["members"]):
            assert rx["state_dict"] == ry["state_dict"], f"{rx['table']} seed {rx['seed']}: weights differ"
            assert rx["keys"] == ry["keys"] and rx["score"] == ry["score"] and rx["steps"] == ry["steps"]
            pd.testing.assert_frame_equal(rx["history"], ry["history"])


def assert_same_bundle(a, b) -> None:
    assert a.spec == b.spec
    assert list(a.state_dicts) == list(b.state_dicts)
    for seed, sd in a.state_dicts.items():
        other = b.state_dicts[seed]
        assert list(sd) == list(other)
        for k, v in sd.items():
            assert v.dtype == other[k].dtype and torch.equal(v, other[k]), f"seed {seed} {k}"


def assert_same_history(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns=list(TIMING_COLUMNS)), b.drop(columns=list(TIMING_COLUMNS)))


def sleepy_or_diverge(payload: float, shared: Any) -> None:
    """Sleep ``payload`` seconds, or raise at once when it is negative."""
    import time

    if payload < 0:
        diverge(payload, shared)
    time.sleep(payload)
