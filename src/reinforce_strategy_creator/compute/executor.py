"""Executors: an order-preserving map of a pure job function over payloads, on one backend.

``open_executor(ComputeParams)`` gives a context manager with one method that matters::

    with open_executor(params) as ex:
        results = ex.map(job, payloads, shared=tables)   # results[i] = job(payloads[i], tables)

``job`` is a top-level (picklable) function ``job(payload, shared) -> result``; it must be pure:
its result depends only on its arguments (training jobs seed everything they use), so a job that
is rerun (its worker died) gives the same result, and the backend and worker count do not change
any result. ``shared`` is data every job reads (a fold's tables); it is sent to each worker once
per map, not once per job:

* ``sequential``: the jobs run in the driver, one after the other; ``shared`` is passed as is.
* ``processes``: a pool of local worker processes (``forkserver`` start method where the platform
  has it, else ``spawn``; never ``fork``), started on the first map and reused by later maps of the
  same executor. ``shared`` is pickled once to a file in the executor's temporary folder; each
  worker loads it on its first job of the map and keeps it for the next ones.
* ``dask``: a ``distributed.Client`` on a ``LocalCluster`` started for the executor, or on the
  scheduler at ``compute.address``. ``shared`` is ``client.scatter(..., broadcast=True)``: one
  copy on every worker, every job gets a reference.

Every worker sets ``torch.set_num_threads(compute.threads_per_worker)`` before each job.

A worker that dies (a killed process, a lost machine) is not an error of the job: its jobs are
rerun, up to ``compute.retries`` times each (dask: the scheduler's ``allowed-failures``;
processes: the broken pool is replaced and the jobs that had started and not finished are
counted and resubmitted). A job whose own code raises is not retried: the map raises that error.
Progress (jobs done / running / queued, env steps/s) is written to stderr (:mod:`.progress`).
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import copyreg
import logging
import multiprocessing as mp
import os
import pickle
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import InputError
from ..params.compute import ComputeParams
from .progress import JobProgress, job_steps

logger = logging.getLogger(__name__)

__all__ = [
    "ComputeConnectionError",
    "DaskExecutor",
    "Executor",
    "ProcessExecutor",
    "SequentialExecutor",
    "WorkerDiedError",
    "close_shared_executors",
    "open_executor",
    "shared_executor",
]

Job = Callable[[Any, Any], Any]
POLL_S = 0.25


class ComputeConnectionError(InputError):
    """The Dask scheduler at ``compute.address`` cannot be used (unreachable, no workers, other code)."""


class WorkerDiedError(InputError):
    """A job's worker died more often than ``compute.retries`` allows (the message says what to check)."""


def _set_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class Executor:
    """The backend-independent part: ``map``, the context manager, ``close``."""

    backend = "sequential"

    def __init__(self, params: ComputeParams):
        self.params = params
        self.closed = False

    @property
    def workers(self) -> int:
        """How many jobs run at the same time."""
        return 1

    @property
    def threads_per_worker(self) -> int:
        return int(self.params.threads_per_worker)

    def map(
        self,
        fn: Job,
        payloads: Sequence[Any],
        shared: Any = None,
        *,
        label: str = "jobs",
        progress: bool = True,
        stream: Any = None,
    ) -> list[Any]:
        """``[fn(p, shared) for p in payloads]``, run on the backend, in the order of ``payloads``."""
        if self.closed:
            raise RuntimeError(f"the {self.backend} executor is closed")
        payloads = list(payloads)
        bar = JobProgress(len(payloads), label, self.backend, stream=stream, enabled=progress)
        try:
            return self._map(fn, payloads, shared, bar)
        finally:
            bar.close()

    def _map(self, fn: Job, payloads: list[Any], shared: Any, bar: JobProgress) -> list[Any]:
        results, steps = [], 0
        for p in payloads:
            bar.show(len(results), 1, steps)
            results.append(fn(p, shared))
            steps += job_steps(results[-1])
        bar.show(len(results), 0, steps)
        return results

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self.backend} workers={self.workers}>"


class SequentialExecutor(Executor):
    """Every job in the driver process, one after the other."""


# --------------------------------------------------------------------------- processes
_WORKER: dict[str, Any] = {}  # the worker's end of the driver's event queue ("events")
_SHARED: dict[str, Any] = {}  # the worker's copy of the current map's shared data


def _process_init(threads: int, events: Any) -> None:
    _WORKER["events"] = events
    _set_threads(threads)


def _load_shared(ref: tuple[str, str] | None) -> Any:
    if ref is None:
        return None
    key, path = ref
    if key not in _SHARED:
        _SHARED.clear()  # one map's data at a time
        with open(path, "rb") as fh:
            _SHARED[key] = pickle.load(fh)
    return _SHARED[key]


def _rebuild_exception(cls: type[BaseException], args: tuple, state: dict) -> BaseException:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


def _reduce_exception(exc: BaseException) -> tuple:
    return (_rebuild_exception, (type(exc), exc.args, dict(exc.__dict__)))


def _guarded(fn: Job, payload: Any, shared: Any) -> Any:
    """``fn(payload, shared)``; an exception whose class cannot be unpickled from its ``args`` (a
    custom ``__init__``) is registered with ``copyreg`` so that it reaches the driver as the same
    class with the same args and attributes, not as an unpickling error."""
    try:
        return fn(payload, shared)
    except Exception as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:  # noqa: BLE001 - any failure to round-trip: send it field by field
            copyreg.pickle(type(exc), _reduce_exception)
        raise


def _process_call(fn: Job, index: int, payload: Any, ref: tuple[str, str] | None, threads: int) -> Any:
    # synchronous: the driver learns that the job started even if this process dies right after
    _WORKER["events"].put((index, os.getpid()))
    _set_threads(threads)
    return _guarded(fn, payload, _load_shared(ref))


def _mp_context() -> mp.context.BaseContext:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # the workers fork from a server that imported these once (not from the driver)
        ctx.set_forkserver_preload(["torch", "pandas", __name__, "reinforce_strategy_creator.training"])
        return ctx
    return mp.get_context("spawn")


class ProcessExecutor(Executor):
    """A pool of ``compute.workers`` local processes (default: one per CPU core)."""

    backend = "processes"

    def __init__(self, params: ComputeParams):
        super().__init__(params)
        self.n_workers = int(params.workers or os.cpu_count() or 1)
        self.ctx = _mp_context()
        self.events = self.ctx.SimpleQueue()
        self.pool: cf.ProcessPoolExecutor | None = None
        self.tmp = tempfile.mkdtemp(prefix="rsc-compute-")
        self.restarts = 0

    @property
    def workers(self) -> int:
        return self.n_workers

    def _pool(self) -> cf.ProcessPoolExecutor:
        if self.pool is None:
            self.pool = cf.ProcessPoolExecutor(
                self.n_workers,
                mp_context=self.ctx,
                initializer=_process_init,
                initargs=(self.threads_per_worker, self.events),
            )
        return self.pool

    def _processes(self) -> dict[int, Any]:
        """The current pool's worker processes by pid (none before the first map)."""
        return dict(getattr(self.pool, "_processes", None) or {})

    @property
    def worker_pids(self) -> frozenset[int]:
        """The pids of the current pool's worker processes: the processes that run this
        executor's maps until one dies (then a new pool replaces them) or the executor closes."""
        return frozenset(self._processes())

    def _drop_pool(self) -> None:
        """Stop the pool's workers now (a job still running is abandoned: after a job's error, an
        interrupt or at close nothing waits for it) and forget the pool."""
        if self.pool is not None:
            for proc in self._processes().values():
                with contextlib.suppress(Exception):
                    proc.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _started(self, into: dict[int, int]) -> None:
        while not self.events.empty():
            index, pid = self.events.get()
            into[index] = pid

    def _map(self, fn: Job, payloads: list[Any], shared: Any, bar: JobProgress) -> list[Any]:
        ref = None
        if shared is not None:
            key = uuid.uuid4().hex
            path = os.path.join(self.tmp, f"shared-{key}.pkl")
            with open(path, "wb") as fh:
                pickle.dump(shared, fh, protocol=pickle.HIGHEST_PROTOCOL)
            ref = (key, path)
        try:
            return self._run(fn, payloads, ref, bar)
        finally:
            if ref is not None:
                with contextlib.suppress(OSError):
                    os.remove(ref[1])

    def _run(self, fn: Job, payloads: list[Any], ref: Any, bar: JobProgress) -> list[Any]:
        results: dict[int, Any] = {}
        deaths = dict.fromkeys(range(len(payloads)), 0)
        empty_breaks, steps = 0, 0
        while len(results) < len(payloads):
            self._started({})  # forget events of an earlier pool
            pool = self._pool()
            futures = {
                pool.submit(_process_call, fn, i, payloads[i], ref, self.threads_per_worker): i
                for i in range(len(payloads))
                if i not in results
            }
            started: dict[int, int] = {}
            waiting, broken = set(futures), False
            while waiting and not broken:
                try:
                    done, waiting = cf.wait(waiting, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
                except BaseException:  # an interrupt: stop the workers, not only the driver
                    self._drop_pool()
                    raise
                for f in done:
                    try:
                        results[futures[f]] = f.result()
                        steps += job_steps(results[futures[f]])
                    except BrokenProcessPool:
                        broken = True
                    except BaseException:
                        self._drop_pool()  # the job's own error: not retried, the map stops
                        raise
                self._started(started)
                bar.show(len(results), len(set(started) - set(results)), steps)
            if not broken:
                continue
            # a worker died: every job that had started and not finished lost its worker
            self._drop_pool()
            self._started(started)
            lost = sorted(set(started) - set(results))
            self.restarts += 1
            empty_breaks = 0 if lost else empty_breaks + 1
            for i in lost:
                deaths[i] += 1
                if deaths[i] > self.params.retries:
                    raise WorkerDiedError(
                        f"job {i} of {len(payloads)}: its worker process died {deaths[i]} times "
                        f"(compute.retries = {self.params.retries}); the last one was pid {started[i]}. "
                        "Check the worker's memory (the kernel's OOM killer) and raise compute.retries "
                        "if workers are killed from outside."
                    )
            if empty_breaks > self.params.retries:
                raise WorkerDiedError(
                    f"the worker processes died {empty_breaks} times before running a job "
                    f"(compute.retries = {self.params.retries}); run with compute.backend=sequential "
                    "to see the error"
                )
            logger.warning(
                "compute: a worker process died; rerunning %d job(s) (%s) on a new pool",
                len(lost),
                ", ".join(str(i) for i in lost),
            )
        return [results[i] for i in range(len(payloads))]

    def close(self) -> None:
        if not self.closed:
            self._drop_pool()
            shutil.rmtree(self.tmp, ignore_errors=True)
        super().close()


# --------------------------------------------------------------------------- dask
def _dask_call(fn: Job, payload: Any, shared: Any, threads: int) -> Any:
    _set_threads(threads)
    return _guarded(fn, payload, shared)


def _allowed_failures(dask_scheduler: Any = None) -> int:
    return int(dask_scheduler.allowed_failures)


def _versions() -> dict[str, str]:
    import torch

    from .. import __version__

    return {"reinforce_strategy_creator": str(__version__), "torch": str(torch.__version__)}


_NO_SCHEDULER_FIX = (
    "Start one there (`dask scheduler`, then `dask worker <address> --nthreads 1` on each machine; "
    "docs/scaling.md), fix the address, or set compute.address=null to start a local cluster."
)


def _probe_scheduler(address: str, timeout: float) -> None:
    """Open and close a TCP connection to the host and port of ``address``: raises
    ``ConnectionRefusedError`` at once when nothing listens there, ``TimeoutError`` when nothing
    accepts within ``timeout`` seconds. Other failures (a host name that does not resolve) and
    addresses without a TCP host and port are left to the Dask client, which retries them until
    its timeout."""
    from distributed.comm.addressing import get_address_host_port

    try:
        host, port = get_address_host_port(address, strict=False)
    except ValueError:
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except (ConnectionRefusedError, TimeoutError):
        raise
    except OSError:
        return


class DaskExecutor(Executor):
    """A ``LocalCluster`` started for the executor, or the scheduler at ``compute.address``."""

    backend = "dask"

    def __init__(self, params: ComputeParams):
        super().__init__(params)
        from distributed import Client, LocalCluster

        self.cluster = None
        # distributed logs every start, stop and plugin of the cluster at INFO on its own stderr
        # handler; keep its warnings and errors, log the dashboard link ourselves
        self._dask_logger = logging.getLogger("distributed")
        self._dask_level = self._dask_logger.level
        self._dask_logger.setLevel(max(self._dask_level, logging.WARNING))
        if params.address is None:
            # the same for the LocalCluster's worker processes (they read it when they start);
            # a user's own DASK_LOGGING__DISTRIBUTED wins
            os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
            n = int(params.workers or os.cpu_count() or 1)
            self.cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                # a free port: the scheduler's HTTP server runs even without the dashboard, and the
                # default port 8787 may belong to another user's cluster
                dashboard_address=":0",
                scheduler_kwargs={
                    "allowed_failures": int(params.retries),
                    "dashboard": bool(params.dashboard),
                },
            )
            self.client = Client(self.cluster)
        else:
            self.client = self._connect(Client, params)
        if params.dashboard and self.client.dashboard_link:
            logger.info("compute: Dask dashboard at %s", self.client.dashboard_link)

    @staticmethod
    def _connect(client_cls: Any, params: ComputeParams) -> Any:
        address, timeout = params.address, int(params.connect_timeout_s)
        try:
            _probe_scheduler(address, timeout)
            client = client_cls(address, timeout=f"{timeout}s")
        except ConnectionRefusedError as exc:
            raise ComputeConnectionError(
                f"compute.address: nothing listens at {address!r} (connection refused). {_NO_SCHEDULER_FIX}"
            ) from exc
        except (OSError, TimeoutError, ValueError) as exc:
            raise ComputeConnectionError(
                f"compute.address: no Dask scheduler answered at {address!r} within {timeout} s "
                f"(compute.connect_timeout_s) [{type(exc).__name__}: {exc}]. {_NO_SCHEDULER_FIX}"
            ) from exc
        try:
            try:
                client.wait_for_workers(1, timeout=timeout)
            except (TimeoutError, OSError) as exc:
                raise ComputeConnectionError(
                    f"compute.address: the Dask scheduler at {address!r} has no worker after {timeout} s "
                    "(compute.connect_timeout_s); start workers with "
                    f"`dask worker {address} --nthreads 1` (docs/scaling.md)"
                ) from exc
            mine = _versions()
            for worker, theirs in client.run(_versions).items():
                if theirs != mine:
                    raise ComputeConnectionError(
                        f"compute.address: worker {worker} runs {theirs}, this driver {mine}; every "
                        "worker needs the same environment (`pip install -e .[scale]` with the same "
                        "torch wheel, docs/scaling.md)"
                    )
            allowed = client.run_on_scheduler(_allowed_failures)
            if allowed != params.retries:
                logger.warning(
                    "compute: the scheduler at %s reruns a job whose worker died %d time(s) "
                    "(distributed.scheduler.allowed-failures), not compute.retries = %d; start it with "
                    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=%d to match",
                    address,
                    allowed,
                    params.retries,
                    params.retries,
                )
        except BaseException:
            client.close()
            raise
        return client

    @property
    def workers(self) -> int:
        return int(sum(self.client.nthreads().values()))

    def _map(self, fn: Job, payloads: list[Any], shared: Any, bar: JobProgress) -> list[Any]:
        from distributed import wait as dask_wait
        from distributed.scheduler import KilledWorker

        tag = f"rsc-{uuid.uuid4().hex[:8]}"
        ref = None if shared is None else self.client.scatter([shared], broadcast=True, hash=False)[0]
        futures = [
            self.client.submit(
                _dask_call, fn, p, ref, self.threads_per_worker, key=f"{tag}-{i}", pure=False, retries=0
            )
            for i, p in enumerate(payloads)
        ]
        results: dict[int, Any] = {}
        steps = 0
        index = {f: i for i, f in enumerate(futures)}
        waiting, n_workers = set(futures), self.workers
        try:
            while waiting:
                try:
                    done, waiting = dask_wait(waiting, timeout=POLL_S, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                for f in sorted(done, key=index.get):
                    i = index[f]
                    try:
                        results[i] = f.result()
                    except KilledWorker as exc:
                        raise WorkerDiedError(
                            f"job {i} of {len(payloads)}: its Dask worker died more than "
                            f"{exc.allowed_failures} time(s) (allowed-failures; compute.retries = "
                            f"{self.params.retries}). Check the workers' memory and logs."
                        ) from exc
                    steps += job_steps(results[i])
                bar.show(len(results), min(len(waiting), n_workers), steps)
        finally:
            self.client.cancel([f for f in futures if index[f] not in results])
            del futures, ref, index
        return [results[i] for i in range(len(payloads))]

    def close(self) -> None:
        if not self.closed:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
            self._dask_logger.setLevel(self._dask_level)
        super().close()


# --------------------------------------------------------------------------- opening
BACKENDS: dict[str, type[Executor]] = {
    "sequential": SequentialExecutor,
    "processes": ProcessExecutor,
    "dask": DaskExecutor,
}


def open_executor(params: ComputeParams | Any = None) -> Executor:
    """The executor of a ``compute`` block (a ``ComputeParams`` or its mapping; None = the defaults).
    Use it as a context manager, or ``close()`` it."""
    params = ComputeParams.parse(params if params is not None else {})
    return BACKENDS[params.backend](params)


_OPEN: dict[str, Executor] = {}


def shared_executor(params: ComputeParams | Any = None) -> Executor:
    """One open executor per ``compute`` block in this process, reused by every caller (the Kedro
    nodes of one run share one pool or cluster); closed by :func:`close_shared_executors` (the
    project's Kedro hook after a run) or at interpreter exit."""
    params = ComputeParams.parse(params if params is not None else {})
    key = params.model_dump_json()
    ex = _OPEN.get(key)
    if ex is None or ex.closed:
        ex = _OPEN[key] = open_executor(params)
    return ex


def close_shared_executors() -> None:
    """Close every executor opened by :func:`shared_executor`."""
    while _OPEN:
        _, ex = _OPEN.popitem()
        with contextlib.suppress(Exception):
            ex.close()


atexit.register(close_shared_executors)
