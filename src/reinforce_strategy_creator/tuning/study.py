"""Run a study: the driver queues exactly the trials asked for; workers claim them.

Exact trial counts with any number of workers: the driver puts ``n_trials - (finished + queued +
running)`` empty WAITING trials in the study (``enqueue_trial({})``: the sampler still chooses
every value). Each worker loops: fail stale trials (heartbeat, RDB storages), claim one WAITING
trial atomically (the storage's ``set_trial_state_values(..., RUNNING)`` succeeds for one worker
only, as Optuna's own ``ask`` does), run it, tell the result. A worker never creates a trial, so
the total cannot overshoot; a trial whose worker was killed is failed by the heartbeat and queued
again with the same parameters (``RetryHeartbeatStaleTrialCallback``), so it is not lost. A worker
stops when nothing is queued and (RDB) nothing is running. This is what
``optuna.study.MaxTrialsCallback(states=(COMPLETE, PRUNED))`` aims at, without its race between
two workers that both see ``n - 1`` finished trials.

Backends (``compute.backend``): ``sequential`` runs one worker loop in the driver; ``processes``
starts ``compute.workers`` local processes; ``dask`` submits one worker task per Dask worker to
the cluster at ``compute.address`` (which needs a ``postgresql://`` storage: a journal file is on
one machine) or to a ``LocalCluster``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..evaluation.verdict import config_sha256, window_fingerprint
from ..params.base import ParameterError
from ..params.compute import ComputeParams
from ..params.tuning import TuningParams, check_search_space
from .objective import TuningData, evaluate_config, trial_plan, tuning_data
from .space import corners, suggest
from .storage import is_journal, is_remote, open_storage, redact

__all__ = ["StudyResult", "TrialObjective", "TuningError", "WorkerJob", "run_study", "run_worker", "work"]

logger = logging.getLogger(__name__)


class TuningError(InputError):
    """A study cannot go on or produced nothing to report."""


def make_sampler(tuning: TuningParams, worker: int = 0):
    import optuna

    seed = None if tuning.seed is None else tuning.seed + worker
    if tuning.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(tuning.n_trials // 2, 1)))


def make_pruner(tuning: TuningParams):
    import optuna

    if tuning.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=tuning.pruner_startup_trials, n_warmup_steps=0)


# --------------------------------------------------------------------------- the objective
class TrialObjective:
    """``objective(trial)``: the trial's values from the search space, trained on every fold,
    the mean validation Sharpe returned; the running mean is reported after each fold."""

    def __init__(self, training: Mapping[str, Any], tuning: TuningParams, data: TuningData) -> None:
        self.training, self.tuning, self.data = dict(training), tuning, data

    def __call__(self, trial) -> float:
        import optuna

        values = suggest(trial, self.tuning.search_space)
        plan = trial_plan(self.training, self.tuning, values)

        def report(value: float, step: int) -> None:
            trial.report(value, step)
            trial.set_user_attr("folds_done", step + 1)
            if trial.should_prune():
                raise optuna.TrialPruned(f"running mean {value:.3f} after {self.data.folds[step].name}")

        try:
            out = evaluate_config(plan, self.data, report)
        finally:
            trial.set_user_attr("validation_windows", len(self.data.folds))
        folds = out["folds"]
        trial.set_user_attr("fold_sharpe", {r["fold"]: r["sharpe"] for r in folds})
        trial.set_user_attr("ruined_seeds", out["ruined_seeds"])
        trial.set_user_attr("diverged_folds", out["diverged_folds"])
        trial.set_user_attr("checkpoint_evaluations", out["checkpoint_evaluations"])
        return float(out["value"])


# --------------------------------------------------------------------------- the worker loop
class _Heartbeat:
    """Record the trial's heartbeat now and every ``interval`` seconds until the block ends."""

    def __init__(self, storage, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id
        self.interval = storage.get_heartbeat_interval()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.storage.record_heartbeat(self.trial_id)

    def __enter__(self):
        self.storage.record_heartbeat(self.trial_id)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def _heartbeat_enabled(study) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(study._storage))


def claim(study):
    """One queued (WAITING) trial set RUNNING by this worker, or None: the storage lets exactly
    one worker make that change (the same step as Optuna's ``Study.ask``)."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                return optuna.trial.Trial(study, t._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def run_trial(study, trial, objective: Callable[[Any], float], heartbeat: bool) -> str:
    """Run one claimed trial and tell its state; an error in the objective fails the trial and
    is raised (never retried: a bug or a bad configuration is reported)."""
    import optuna
    from optuna.trial import TrialState

    beat = _Heartbeat(study._storage, trial._trial_id) if heartbeat else contextlib.nullcontext()
    with beat:
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            return "pruned"
        except BaseException:
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
    if value is None or not math.isfinite(float(value)):
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise TuningError(f"trial {trial.number}: the objective returned {value!r}, not a finite number")
    frozen = study.tell(trial, float(value), skip_if_finished=True)
    if frozen.state != TrialState.COMPLETE:  # failed as stale meanwhile: its retry runs instead
        logger.warning("trial %d had been failed as stale; its retry counts instead", trial.number)
        return "stale"
    return "complete"


def work(study, objective: Callable[[Any], float], poll_s: float = 2.0) -> list[int]:
    """The worker loop (module docstring); returns the numbers of the trials this worker ran."""
    import optuna
    from optuna.trial import TrialState

    heartbeat = _heartbeat_enabled(study)
    ran: list[int] = []
    while True:
        if heartbeat:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        trial = claim(study)
        if trial is None:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if heartbeat and running:  # they may still die and come back as queued retries
                time.sleep(poll_s)
                continue
            return ran
        run_trial(study, trial, objective, heartbeat)
        ran.append(trial.number)


def queue_trials(study, n_trials: int, heartbeat: bool) -> tuple[int, int]:
    """Queue empty WAITING trials until finished + queued + running = ``n_trials``; returns
    ``(queued now, stuck)``. Without heartbeats (journal storage) a RUNNING trial cannot be told
    from one whose worker died: it is not counted as on its way (``stuck``, reported), so the study
    still reaches ``n_trials`` finished trials."""
    from optuna.trial import TrialState

    def count(*states):
        return len(study.get_trials(deepcopy=False, states=states))

    running = count(TrialState.RUNNING)
    missing = n_trials - count(TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING)
    missing -= running if heartbeat else 0
    for _ in range(max(0, missing)):
        study.enqueue_trial({}, skip_if_exists=False)
    return max(0, missing), 0 if heartbeat else running


# --------------------------------------------------------------------------- workers
@dataclass
class WorkerJob:
    """What one worker needs (picklable: it travels to a process or a Dask worker)."""

    storage_url: str
    study_name: str
    tuning: dict[str, Any]
    worker: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    data: TuningData | None = None
    objective: Callable[[Any], float] | None = None  # a plain function (tests); default: TrialObjective
    threads: int = 1
    connect_timeout_s: int = 10
    poll_s: float = 2.0


def run_worker(job: WorkerJob) -> dict[str, Any]:
    """One worker: load the study from its storage and run :func:`work`."""
    import optuna

    if job.threads:
        with contextlib.suppress(Exception):
            import torch

            torch.set_num_threads(job.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuning = TuningParams.parse(job.tuning)
    storage = open_storage(tuning, job.storage_url, connect_timeout_s=job.connect_timeout_s)
    study = optuna.load_study(
        study_name=job.study_name,
        storage=storage,
        sampler=make_sampler(tuning, job.worker),
        pruner=make_pruner(tuning),
    )
    objective = job.objective or TrialObjective(job.training, tuning, job.data)
    started = time.time()
    ran = work(study, objective, job.poll_s)
    return {"worker": job.worker, "pid": os.getpid(), "trials": ran, "wall_s": time.time() - started}


def launch(job: WorkerJob, workers: int, compute: ComputeParams) -> list[dict[str, Any]]:
    """Run ``workers`` copies of ``job`` (worker k: ``job.worker = k``) on the compute backend; a
    worker's error is raised here. With ``compute.address`` the cluster's worker count (capped at
    ``workers``, the trials to run) decides how many."""
    import dataclasses

    def jobs(n: int) -> list[WorkerJob]:
        return [dataclasses.replace(job, worker=k) for k in range(n)]

    if compute.backend == "sequential" or workers == 1 and compute.backend != "dask":
        return [run_worker(j) for j in jobs(1)]
    if compute.backend == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return [f.result() for f in [pool.submit(run_worker, j) for j in jobs(workers)]]
    from dask.distributed import Client, LocalCluster

    if compute.address:
        try:
            client = Client(compute.address, timeout=f"{compute.connect_timeout_s}s")
        except OSError as exc:
            raise ParameterError(
                f"compute.address: no Dask scheduler answers at {compute.address} ({exc}); start it "
                "or set compute.address to null."
            ) from None
        cluster = None
        workers = max(1, min(workers, len(client.scheduler_info().get("workers", {})) or 1))
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0" if compute.dashboard else None,
        )
        client = Client(cluster)
    try:
        if compute.dashboard and client.dashboard_link:
            logger.info("Dask dashboard: %s", client.dashboard_link)
        futures = [
            client.submit(run_worker, j, pure=False, key=f"tuning-worker-{j.worker}", retries=compute.retries)
            for j in jobs(workers)
        ]
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def n_workers(compute: ComputeParams, n_trials: int) -> int:
    if compute.backend == "sequential":
        return 1
    return max(1, min(compute.workers or os.cpu_count() or 1, n_trials))


# --------------------------------------------------------------------------- the driver
@dataclass
class StudyResult:
    summary: dict[str, Any]
    best_params: dict[str, Any]
    trials: pd.DataFrame
    event: dict[str, Any]


def prepare(parameters: Mapping[str, Any], root: str = ".") -> tuple[TuningParams, ComputeParams, str]:
    """Validate everything a study needs before any training: the tuning block, its search space
    against ``training.<agent>``, a trial block at the corners of the space, and the storage
    against the compute backend."""
    tuning = TuningParams.parse(parameters.get("tuning"))
    compute = ComputeParams.parse(parameters.get("compute"))
    check_search_space(tuning, parameters["training"])
    for corner in corners(tuning.search_space):
        try:
            trial_plan(parameters["training"], tuning, corner)
        except ParameterError as exc:
            raise ParameterError(
                f"tuning.search_space: the values {corner} give an invalid training.{tuning.agent} block "
                f"({exc}); narrow the ranges."
            ) from None
    url = tuning.storage_url(root)
    if is_journal(url):  # workers in other processes open the same file
        url = str(Path(url).expanduser().resolve())
    if compute.address is not None and not is_remote(url):
        raise ParameterError(
            f"tuning.storage: {redact(url)} is on this machine, but compute.address sends the workers to "
            "a Dask cluster whose machines cannot share it; set tuning.storage to a "
            "postgresql://user@host:5432/db URL every worker can reach."
        )
    return tuning, compute, url


def _study_key(tuning: TuningParams, data: TuningData, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What makes trials of one study comparable: the agent, its block, the budget, the folds and
    the data they read. A study of the same name with another key is refused."""
    return {
        "agent": tuning.agent,
        "windows": [{"start": w["start"], "end": w["end"]} for w in data.windows()],
        "data_fingerprint": window_fingerprint(data.prices),
        "config_sha256": config_sha256(
            {
                "training": {
                    "common": dict(parameters["training"]).get("common"),
                    tuning.agent: dict(parameters["training"])[tuning.agent],
                },
                "feature_engineering": parameters["feature_engineering"],
                "environment": parameters["environment"],
                "walk_forward": data.parameters["walk_forward"],
                "tuning": {
                    k: v
                    for k, v in tuning.to_params().items()
                    if k in ("agent", "folds", "total_steps", "seeds", "search_space")
                },
            }
        ),
    }


def run_study(
    prices: pd.DataFrame,
    parameters: Mapping[str, Any],
    *,
    root: str = ".",
    objective: Callable[[Any], float] | None = None,
) -> StudyResult:
    """Validate, queue the missing trials, run the workers, summarise (module docstring)."""
    import optuna
    from optuna.trial import TrialState

    tuning, compute, url = prepare(parameters, root)
    storage = open_storage(tuning, url, connect_timeout_s=compute.connect_timeout_s)
    data = tuning_data(prices, parameters, tuning)
    key = _study_key(tuning, data, parameters)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=tuning.study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=make_sampler(tuning),
        pruner=make_pruner(tuning),
    )
    stored = study.user_attrs.get("key")
    if stored is None:
        study.set_user_attr("key", key)
    elif stored != key:
        raise ParameterError(
            f"tuning.study_name: the study {tuning.study_name!r} in {redact(url)} was run with another "
            "agent, block, budget, search space or data (its trials are not comparable with this run's); "
            "choose a new tuning.study_name."
        )

    missing, stuck = queue_trials(study, tuning.n_trials, heartbeat=not is_journal(url))
    workers = n_workers(compute, max(missing, 1))
    job = WorkerJob(
        url,
        tuning.study_name,
        tuning.to_params(),
        training=dict(parameters["training"]),
        data=data,
        objective=objective,
        threads=compute.threads_per_worker,
        connect_timeout_s=compute.connect_timeout_s,
        poll_s=min(2.0, float(tuning.heartbeat_interval)),
    )
    started = time.time()
    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    try:
        reports = launch(job, workers, compute) if finished < tuning.n_trials else []
    except BaseException as exc:  # the trials that ran looked at the windows: say how many
        with contextlib.suppress(Exception):
            exc.tuning_study_event = interrupted_event(study, tuning, url, data, key)
        raise
    wall = time.time() - started
    study = optuna.load_study(study_name=tuning.study_name, storage=storage)
    ran = sum(len(r["trials"]) for r in reports)
    workers = len(reports) or workers
    summary, trials, best = summarise(study, tuning, compute, url, data, key, wall, ran, workers, stuck)
    event = study_event(summary)
    return StudyResult(summary, best, trials, event)


def summarise(study, tuning, compute, url, data, key, wall, ran, workers, stuck):
    from optuna.trial import TrialState

    frozen = study.get_trials(deepcopy=False)
    counts = {
        s.name.lower(): sum(t.state == s for t in frozen)
        for s in (
            TrialState.COMPLETE,
            TrialState.PRUNED,
            TrialState.FAIL,
            TrialState.RUNNING,
            TrialState.WAITING,
        )
    }
    complete = [t for t in frozen if t.state == TrialState.COMPLETE]
    if not complete:
        raise TuningError(
            f"study {tuning.study_name}: no trial completed ({counts}); nothing to write. See the log "
            "for the failed trials' errors."
        )
    best = max(complete, key=lambda t: (t.value, -t.number))
    rows = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "last_intermediate": (
                t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
            ),
            "folds_done": t.user_attrs.get("folds_done"),
            "ruined_seeds": t.user_attrs.get("ruined_seeds"),
            "diverged_folds": len(t.user_attrs.get("diverged_folds") or []),
            "duration_s": t.duration.total_seconds() if t.duration is not None else None,
            "retry_of": t.system_attrs.get("failed_trial"),
            **{f"param_{k}": v for k, v in t.params.items()},
        }
        for t in frozen
    ]
    looked = counts["complete"] + counts["pruned"] + counts["fail"] + counts["running"]
    summary = {
        "study_name": tuning.study_name,
        "agent": tuning.agent,
        "storage": redact(url),
        "storage_kind": "journal" if is_journal(url) else "rdb",
        "heartbeat": not is_journal(url),
        "n_trials_asked": tuning.n_trials,
        "trials": counts,
        "trials_counted": looked,
        "stuck_running_at_start": stuck,
        "best_value": best.value,
        "best_trial": best.number,
        "best_params": dict(best.params),
        "objective": "mean over the folds' validation windows of the mean over seeds of each seed's "
        "best-checkpoint validation Sharpe (annualised)",
        "validation_windows": data.windows(),
        "window": {"start": data.windows()[0]["start"], "end": data.windows()[-1]["end"]},
        "data_fingerprint": key["data_fingerprint"],
        "config_sha256": key["config_sha256"],
        "sampler": tuning.sampler,
        "seed": tuning.seed,
        "pruner": tuning.pruner,
        "compute": {"backend": compute.backend, "workers": workers, "address": compute.address},
        "trials_this_run": ran,
        "wall_time_s": wall,
        "trials_per_hour": (ran * 3600.0 / wall) if ran and wall > 0 else None,
    }
    return summary, pd.DataFrame(rows), best_params_yaml(tuning.agent, best.params)


def best_params_yaml(agent: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``{"training": {agent: {...}}}``: merges over conf/base (copy into conf/local/ or pass
    with ``--params``)."""
    return {"training": {agent: {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}}}


def interrupted_event(study, tuning: TuningParams, url: str, data: TuningData, key: Mapping[str, Any]):
    """The ``tuning_study`` event of a run that stopped with an error: every trial in the storage
    that started counts as a look (the project's hook records it, ``hooks.RecordStudyLooks``)."""
    from optuna.trial import TrialState

    started = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return {
        "study_name": tuning.study_name,
        "storage": redact(url),
        "agent": tuning.agent,
        "trials_counted": len(study.get_trials(deepcopy=False, states=started)),
        "windows": [{"start": w["start"], "end": w["end"]} for w in data.windows()],
        "data_fingerprint": key["data_fingerprint"],
        "config_sha256": key["config_sha256"],
        "best_value": max((t.value for t in complete), default=None),
        "interrupted": True,
    }


def study_event(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The ``tuning_study`` event the model registry records (walk_forward's judge counts its trials
    for every stitched window its validation windows overlap)."""
    return {
        "study_name": summary["study_name"],
        "storage": summary["storage"],
        "agent": summary["agent"],
        "trials_counted": int(summary["trials_counted"]),
        "windows": [{"start": w["start"], "end": w["end"]} for w in summary["validation_windows"]],
        "data_fingerprint": summary["data_fingerprint"],
        "config_sha256": summary["config_sha256"],
        "best_value": summary["best_value"],
    }
