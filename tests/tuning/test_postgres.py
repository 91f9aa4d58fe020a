"""Study workers sharing one study in a REAL PostgreSQL server: exact trial counts, a SIGKILLed
worker's trial failed by the heartbeat and retried, and a refused connection named."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from reinforce_strategy_creator.params.base import ParameterError
from reinforce_strategy_creator.params.tuning import TuningParams
from reinforce_strategy_creator.tuning.storage import open_storage
from reinforce_strategy_creator.tuning.study import WorkerJob, queue_trials, run_worker
from tests.support.postgres import binaries, free_port, postgres_server
from tests.support.tuning import sleepy_quadratic


def test_a_refused_postgres_connection_names_tuning_storage():
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    with pytest.raises(ParameterError, match=r"tuning\.storage: cannot use postgresql://") as err:
        open_storage(TuningParams.parse({}), url, connect_timeout_s=3)
    assert "OperationalError" in str(err.value) and "refused" in str(err.value)
    assert "Start the database" in str(err.value)


def test_a_password_never_appears_in_the_error():
    url = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(ParameterError) as err:
        open_storage(TuningParams.parse({}), url, connect_timeout_s=3)
    assert "s3cret" not in str(err.value) and "postgres:***@" in str(err.value)


@pytest.fixture(scope="module")
def postgres_url():
    if binaries() is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) are not on PATH nor in /usr/lib/postgresql/*/bin; "
            ".ci/run installs the Debian postgresql package"
        )
    with postgres_server() as url:
        yield url


def _study(url: str, name: str, n: int):
    import optuna

    tuning = TuningParams.parse(
        {
            "study_name": name,
            "storage": url,
            "n_trials": n,
            "heartbeat_interval": 1,
            "grace_period": 3,
            "max_retry": 2,
            "sampler": "random",
            "search_space": {"gamma": {"type": "float", "low": 0.8, "high": 0.9}},
        }
    )
    storage = open_storage(tuning, url)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    queued, stuck = queue_trials(study, n, heartbeat=True)
    assert (queued, stuck) == (n, 0)
    return tuning, storage, study


def _workers(url, tuning, n_workers):
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for k in range(n_workers):
        job = WorkerJob(
            url,
            tuning.study_name,
            tuning.to_params(),
            worker=k,
            objective=sleepy_quadratic,
            threads=0,
            poll_s=0.2,
        )
        p = ctx.Process(target=run_worker, args=(job,))
        p.start()
        procs.append(p)
    return procs


def _states(study):
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return {s.name: sum(t.state == s for t in trials) for s in TrialState}, trials


@pytest.mark.slow
def test_two_workers_finish_exactly_the_trials_asked_for(postgres_url):
    n = 7  # odd: both workers see n - 1 finished at the same moment
    tuning, _, study = _study(postgres_url, "exact", n)
    procs = _workers(postgres_url, tuning, 2)
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    counts, trials = _states(study)
    assert counts["COMPLETE"] == n and counts["FAIL"] == counts["RUNNING"] == counts["WAITING"] == 0
    assert len(trials) == n  # none created beyond the queue, none lost
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both workers took part


@pytest.mark.slow
def test_a_killed_worker_trial_is_failed_by_the_heartbeat_and_retried(postgres_url):
    from optuna.trial import TrialState

    n = 6
    os.environ["RSC_TUNING_SLEEP"] = "0.6"
    try:
        tuning, _, study = _study(postgres_url, "killed", n)
        victim, survivor = _workers(postgres_url, tuning, 2)
        deadline, killed = time.time() + 90, None
        while killed is None and time.time() < deadline:
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                # once the trial has drawn its configuration (the objective records the pid, then
                # suggests, then sleeps): killed in between, it would have no params to retry with
                if t.user_attrs.get("pid") == victim.pid and t.params:
                    os.kill(victim.pid, signal.SIGKILL)  # mid-trial: the trial stays RUNNING
                    killed = t.number
                    break
            time.sleep(0.05)
        assert killed is not None, "the victim never ran a trial"
        victim.join(10)
        survivor.join(120)
        assert victim.exitcode == -signal.SIGKILL and survivor.exitcode == 0
    finally:
        os.environ.pop("RSC_TUNING_SLEEP", None)
    counts, trials = _states(study)
    assert counts["COMPLETE"] == n and counts["RUNNING"] == counts["WAITING"] == 0
    assert counts["FAIL"] == 1
    failed = next(t for t in trials if t.state == TrialState.FAIL)
    assert failed.number == killed
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == failed.params  # the same configuration, run again
