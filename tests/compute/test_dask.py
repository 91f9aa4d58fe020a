"""The dask backend on a real cluster (a scheduler and two workers as subprocesses) and on a
``LocalCluster``: the same results as sequential, dead workers' jobs rerun, the job's own errors."""

from __future__ import annotations

import pytest

from reinforce_strategy_creator.agents import TrainingDivergedError
from reinforce_strategy_creator.compute import open_executor
from reinforce_strategy_creator.training import train_seeds_job
from tests.compute.conftest import worker_pids
from tests.support.compute import assert_same_results, die_once, died, diverge, echo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster_executor(dask_cluster):
    with open_executor(
        {
            "backend": "dask",
            "address": dask_cluster,
            "connect_timeout_s": 20,
            "dashboard": False,
            "retries": 2,
        }
    ) as ex:
        yield ex


def test_a_real_cluster_gives_the_sequential_results(cluster_executor, tiny_training, sequential_results):
    assert cluster_executor.workers == 2
    payloads, shared = tiny_training
    out = cluster_executor.map(train_seeds_job, payloads, shared, progress=False)
    assert_same_results(out, sequential_results)


def test_on_a_real_cluster_shared_data_and_order_are_kept(cluster_executor, dask_cluster):
    out = cluster_executor.map(echo, list(range(6)), {"x": 1}, progress=False)
    assert [o["payload"] for o in out] == list(range(6))
    assert all(o["shared"] == {"x": 1} for o in out)
    assert {o["pid"] for o in out} <= set(worker_pids(dask_cluster).values())


def test_a_real_cluster_reruns_the_job_of_a_killed_worker(
    cluster_executor, dask_cluster, tiny_training, sequential_results, tmp_path
):
    payloads, shared = tiny_training
    marked = [
        {"job": p, "marker": str(tmp_path / "died") if i == 0 else None} for i, p in enumerate(payloads)
    ]
    out = cluster_executor.map(die_once, marked, shared, progress=False)
    pid = died(tmp_path / "died")  # the first attempt ran, and its worker process is gone
    assert pid not in worker_pids(dask_cluster).values()
    assert_same_results(out, sequential_results)


def test_a_jobs_own_error_comes_back_as_itself(cluster_executor):
    with pytest.raises(TrainingDivergedError) as info:
        cluster_executor.map(diverge, [0], progress=False)
    assert (info.value.agent, info.value.seed, info.value.update) == ("ppo", 7, 3)


def test_a_local_cluster_gives_the_sequential_results_and_reruns_dead_workers_jobs(
    tiny_training, sequential_results, tmp_path
):
    payloads, shared = tiny_training
    marked = [
        {"job": p, "marker": str(tmp_path / "died") if i == 1 else None} for i, p in enumerate(payloads)
    ]
    with open_executor({"backend": "dask", "workers": 2, "dashboard": False, "retries": 1}) as ex:
        assert ex.workers == 2
        assert_same_results(ex.map(train_seeds_job, payloads, shared, progress=False), sequential_results)
        assert_same_results(ex.map(die_once, marked, shared, progress=False), sequential_results)
    died(tmp_path / "died")
