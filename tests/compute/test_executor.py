"""The executor: order, shared data, the job's own errors, dead workers, progress, bad addresses."""

from __future__ import annotations

import io
import os
import socket
import time
import uuid

import pytest
import torch

from reinforce_strategy_creator.agents import TrainingDivergedError
from reinforce_strategy_creator.compute import (
    ComputeConnectionError,
    DaskExecutor,
    WorkerDiedError,
    close_shared_executors,
    open_executor,
    shared_executor,
)
from reinforce_strategy_creator.compute.progress import JobProgress
from reinforce_strategy_creator.errors import InputError
from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.compute import ComputeParams
from reinforce_strategy_creator.training import train_agent, train_seeds_job
from tests.support.compute import (
    Counted,
    always_die,
    assert_same_bundle,
    assert_same_history,
    assert_same_results,
    die_once,
    died,
    diverge_counted,
    echo,
    sleepy_or_diverge,
)
from tests.support.training import ENV, plan, sp500_model_input


def test_sequential_map_keeps_order_and_passes_shared():
    with open_executor({"backend": "sequential"}) as ex:
        out = ex.map(echo, [3, 1, 2], {"x": 1}, progress=False)
    assert [o["payload"] for o in out] == [3, 1, 2]
    assert all(o["shared"] == {"x": 1} and o["pid"] == os.getpid() for o in out)


def test_processes_run_in_other_processes_in_order_with_shared_sent(pool):
    shared = Counted(uuid.uuid4().hex, {"x": [1, 2]})
    out = pool.map(echo, list(range(7)), shared, progress=False)
    workers = pool.worker_pids
    assert [o["payload"] for o in out] == list(range(7))
    assert all(o["shared"] == shared for o in out)
    # the jobs ran in the pool's processes, not in the driver; which worker ran which job is the
    # scheduler's choice (one worker may run them all)
    assert os.getpid() not in workers and {o["pid"] for o in out} <= workers
    # each worker loaded the map's shared data once, not once per job
    assert [o["unpickled"] for o in out] == [1] * 7
    # the pool and its processes are reused by the next map, with that map's shared data
    again = pool.map(echo, [0], "other", progress=False)
    assert again[0]["shared"] == "other"
    assert pool.worker_pids == workers and again[0]["pid"] in workers


def test_a_jobs_own_error_is_the_original_error_not_retried(pool, tmp_path):
    before, attempts = pool.restarts, tmp_path / "attempts"
    with pytest.raises(TrainingDivergedError) as info:
        pool.map(diverge_counted, [str(attempts)], progress=False)
    assert len(attempts.read_text().splitlines()) == 1
    assert (info.value.agent, info.value.seed, info.value.update) == ("ppo", 7, 3)
    assert "training.ppo diverged" in str(info.value)
    assert pool.restarts == before  # not taken for a dead worker, not rerun


@pytest.mark.slow
def test_processes_rerun_the_job_of_a_killed_worker_with_the_same_result(
    pool, tiny_training, sequential_results, tmp_path
):
    payloads, shared = tiny_training
    marked = [
        {"job": p, "marker": str(tmp_path / "died") if i == 1 else None} for i, p in enumerate(payloads)
    ]
    before = pool.restarts
    out = pool.map(die_once, marked, shared, progress=False)
    assert pool.restarts == before + 1
    died(tmp_path / "died")
    assert_same_results(out, sequential_results)


@pytest.mark.slow
def test_processes_with_one_worker_equal_sequential(tiny_training, sequential_results):
    payloads, shared = tiny_training
    with open_executor({"backend": "processes", "workers": 1}) as ex:
        out = ex.map(train_seeds_job, payloads, shared, progress=False)
    assert_same_results(out, sequential_results)


@pytest.mark.slow
def test_processes_with_two_workers_equal_sequential(pool, tiny_training, sequential_results):
    payloads, shared = tiny_training
    assert_same_results(pool.map(train_seeds_job, payloads, shared, progress=False), sequential_results)


@pytest.mark.slow
def test_a_worker_that_always_dies_stops_after_the_retries():
    with open_executor({"backend": "processes", "workers": 1, "retries": 1}) as ex:
        with pytest.raises(WorkerDiedError, match=r"died 2 times \(compute.retries = 1\)"):
            ex.map(always_die, [0], progress=False)


@pytest.fixture
def free_port() -> int:
    """A local TCP port where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_scheduler_address_is_a_clear_input_error_at_once(free_port):
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{free_port}"
    t0 = time.perf_counter()
    with pytest.raises(ComputeConnectionError) as info:
        open_executor({"backend": "dask", "address": address})  # connect_timeout_s: 10
    assert time.perf_counter() - t0 < 2
    assert isinstance(info.value, InputError)
    msg = str(info.value)
    assert "compute.address" in msg and address in msg and "connection refused" in msg
    assert "dask scheduler" in msg


def test_a_listening_address_is_left_to_the_dask_client_with_the_whole_timeout():
    pytest.importorskip("distributed")
    calls = []

    def slow_scheduler(address, timeout):  # the client's own wait, without waiting it here
        calls.append((address, timeout))
        raise OSError(f"Timed out trying to connect to {address} after {timeout}")

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        params = ComputeParams(backend="dask", address=f"tcp://127.0.0.1:{listening.getsockname()[1]}")
        with pytest.raises(ComputeConnectionError, match=r"no Dask scheduler answered .* within 10 s"):
            DaskExecutor._connect(slow_scheduler, params)
    assert calls == [(params.address, "10s")]


def test_an_address_needs_the_dask_backend():
    with pytest.raises(ParameterError, match="compute.backend=dask"):
        ComputeParams.parse({"backend": "processes", "address": "tcp://127.0.0.1:8786"})


def test_shared_executor_is_one_per_block_until_closed():
    a = shared_executor({"backend": "sequential"})
    assert shared_executor(ComputeParams(backend="sequential")) is a
    close_shared_executors()
    assert a.closed and shared_executor({"backend": "sequential"}) is not a
    close_shared_executors()


def test_progress_in_a_log_is_one_final_line_with_counts_and_rate():
    stream = io.StringIO()
    with open_executor({"backend": "sequential"}) as ex:
        ex.map(echo, [0, 1, 2], stream=stream, label="unit")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("unit [sequential]: 3/3 done, 0 running, 0 queued, ")
    assert "env steps/s" in lines[0]


def test_progress_on_a_terminal_is_redrawn_in_place():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    bar = JobProgress(4, "jobs", "processes", stream=(stream := Tty()))
    bar.show(1, 2, 100)
    bar.show(2, 2, 200)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "2/4 done, 2 running, 0 queued" in text


def test_train_agent_on_worker_processes_gives_the_in_process_bundle(pool):
    torch.set_num_threads(1)
    train, validation, scaler = sp500_model_input(160, 60)
    p = plan("a2c", common={"total_steps": 128, "seeds": [0, 1]})
    local, local_history = train_agent(train, validation, scaler, ENV, p)
    remote, remote_history = train_agent(train, validation, scaler, ENV, p, executor=pool)
    assert_same_bundle(local, remote)
    assert_same_history(local_history, remote_history)


@pytest.mark.slow
def test_a_jobs_error_stops_the_map_without_waiting_for_the_other_running_jobs():
    with open_executor({"backend": "processes", "workers": 2}) as ex:
        ex.map(echo, [0, 1], progress=False)  # workers started
        t0 = time.perf_counter()
        with pytest.raises(TrainingDivergedError):
            ex.map(sleepy_or_diverge, [60, -1], progress=False)
        assert time.perf_counter() - t0 < 30
        assert [o["payload"] for o in ex.map(echo, [5], progress=False)] == [5]  # a new pool
