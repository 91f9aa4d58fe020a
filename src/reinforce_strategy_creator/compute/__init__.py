"""Where independent jobs run: in the driver, in local worker processes, or on a Dask cluster.

A plain library (no Kedro): ``open_executor(ComputeParams)`` gives an executor whose ``map(job,
payloads, shared=...)`` runs a pure top-level function over payloads, in order, with ``shared``
sent to each worker once. The backends, what is scattered, retries of jobs whose worker died and
why results do not depend on the backend: docs/scaling.md and :mod:`.executor`.
"""

from __future__ import annotations

from .executor import (
    ComputeConnectionError,
    DaskExecutor,
    Executor,
    ProcessExecutor,
    SequentialExecutor,
    WorkerDiedError,
    close_shared_executors,
    open_executor,
    shared_executor,
)
from .progress import JobProgress, job_steps

__all__ = [
    "ComputeConnectionError",
    "DaskExecutor",
    "Executor",
    "JobProgress",
    "ProcessExecutor",
    "SequentialExecutor",
    "WorkerDiedError",
    "close_shared_executors",
    "job_steps",
    "open_executor",
    "shared_executor",
]
