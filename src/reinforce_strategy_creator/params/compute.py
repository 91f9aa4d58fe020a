"""``compute``: where independent jobs (trainings, tuning trials) run (docs/scaling.md).

The results of a run do not depend on this block: the same seeds give the same weights,
histories, champions and verdict on every backend and worker count. Only the wall time changes.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from .base import Flag, NonNegativeInt, Params, PositiveInt


class ComputeParams(Params):
    """``compute``: the backend that runs independent jobs, and how many workers it uses."""

    PATH: ClassVar[str] = "compute"
    FILE: ClassVar[str] = "conf/base/parameters_compute.yml"

    backend: Literal["sequential", "processes", "dask"] = "sequential"
    """`sequential`: every job in the driver process, one after the other; `processes`: a pool of
    local worker processes; `dask`: a Dask cluster (a `LocalCluster` started for the run, or the
    scheduler at `address`)."""
    workers: PositiveInt | None = None
    """Worker processes for `processes` and for a `LocalCluster`; null = one per CPU core. Ignored
    with `address` (the cluster has the workers it has) and with `sequential`."""
    address: str | None = None
    """`tcp://host:8786`: join this running Dask scheduler (needs `backend: dask`); null = start a
    `LocalCluster` for the run. An unreachable address is an error, never a fallback."""
    connect_timeout_s: PositiveInt = 10
    """Seconds to wait for the scheduler at `address` before the run stops with an error. A refused
    connection (nothing listens at the address) stops the run at once."""
    threads_per_worker: PositiveInt = 1
    """Torch threads in each worker process, and of every training job whose
    `training.<agent>.num_threads` is null, in every backend (sequential included), so that the
    backend never changes a result. 1: small networks gain nothing from more."""
    retries: NonNegativeInt = 2
    """Times a job is rerun when its worker dies (a killed process, a lost machine); the rerun gives
    the same result. A job whose own code raises is not retried: the error is reported. With
    `address`, the scheduler's own `distributed.scheduler.allowed-failures` decides (a warning
    says when it differs)."""
    dashboard: Flag = True
    """Log the Dask dashboard link (stderr) when a cluster is used."""

    @model_validator(mode="after")
    def _address_needs_dask(self) -> ComputeParams:
        if self.address is not None and self.backend != "dask":
            raise ValueError(
                f"address is {self.address!r} but backend is {self.backend!r}: a scheduler address "
                "is only used with backend: dask; set compute.backend=dask or remove compute.address"
            )
        return self
