"""A real Dask cluster as subprocesses (``dask scheduler`` and two ``dask worker`` on 127.0.0.1) and a
tiny training job (PPO, two seeds, 256 steps on a small S&P 500 table)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reinforce_strategy_creator.env import EnvConfig
from reinforce_strategy_creator.training import TABLE, seed_job_payloads
from tests.support.project import PROJECT_ROOT
from tests.support.training import ENV, plan, sp500_model_input

DASK = Path(sys.executable).with_name("dask")


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def worker_pids(address: str) -> dict[str, int]:
    """The pid of each worker process of the cluster (not its nanny)."""
    from distributed import Client

    with Client(address, timeout="10s") as c:
        return c.run(os.getpid)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory) -> str:
    """The address of a running scheduler with two single-thread workers; stopped by pid at teardown."""
    tmp = tmp_path_factory.mktemp("dask")
    sched_file = tmp / "scheduler.json"
    env = {
        **os.environ,
        # this checkout's package first (an editable install may point at another checkout)
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)]),
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "2",
    }
    log = open(tmp / "cluster.log", "w")  # noqa: SIM115 - closed at teardown
    common = {"env": env, "stdout": log, "stderr": subprocess.STDOUT, "cwd": tmp}
    procs = [
        subprocess.Popen(
            [
                DASK,
                "scheduler",
                "--scheduler-file",
                sched_file,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
            ],
            **common,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError("dask scheduler did not start:\n" + (tmp / "cluster.log").read_text())
            time.sleep(0.1)
        time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for k in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        DASK,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                        "--name",
                        f"w{k}",
                        "--local-directory",
                        tmp / f"w{k}",
                    ],
                    **common,
                )
            )
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        _stop(procs)
        log.close()


@pytest.fixture(scope="session")
def tiny_training() -> tuple[list[dict], dict]:
    """(payloads, shared): PPO with two seeds on two training sets (``TABLE`` and ``later``, as two
    walk-forward folds) as one population of four members (one job), then A2C with two seeds on
    ``TABLE`` one after the other (one job per seed)."""
    torch.set_num_threads(1)
    train, validation, _ = sp500_model_input(160, 60)
    later, later_validation, _ = sp500_model_input(160, 60, start="2006-01-01")
    env = EnvConfig.parse(ENV)
    ppo = plan("ppo", common={"total_steps": 256, "seeds": [0, 1], "population": True})
    a2c = plan("a2c", common={"total_steps": 256, "seeds": [0, 1], "population": False})
    payloads = [
        *seed_job_payloads(ppo, env, torch.device("cpu"), threads=1, tables=[TABLE, "later"]),
        *seed_job_payloads(a2c, env, torch.device("cpu"), threads=1),
    ]
    assert [p["members"] for p in payloads] == [
        [[TABLE, 0], [TABLE, 1], ["later", 0], ["later", 1]],
        [[TABLE, 0]],
        [[TABLE, 1]],
    ]
    shared = {
        TABLE: {"train": train, "validation": validation},
        "later": {"train": later, "validation": later_validation},
    }
    return payloads, shared


@pytest.fixture(scope="session")
def sequential_results(tiny_training) -> list[dict]:
    from reinforce_strategy_creator.compute import open_executor
    from reinforce_strategy_creator.training import train_seeds_job

    payloads, shared = tiny_training
    with open_executor({"backend": "sequential"}) as ex:
        return ex.map(train_seeds_job, payloads, shared, progress=False)


@pytest.fixture(scope="session")
def pool():
    """Two local worker processes, shared by the tests (started once)."""
    from reinforce_strategy_creator.compute import open_executor

    with open_executor({"backend": "processes", "workers": 2, "retries": 1}) as ex:
        yield ex
