"""Where a study lives: a journal file (one machine) or an RDB (PostgreSQL across machines).

:func:`open_storage` turns ``tuning.storage`` into an Optuna storage and proves it works before
any training starts: a PostgreSQL server that refuses the connection, a URL with a typo or a
journal folder that cannot be created is a :class:`~..params.base.ParameterError` naming
``tuning.storage``, never a fallback to another storage.

Killed workers: on an RDB storage (``postgresql://``, ``sqlite:///``) every running trial records
a heartbeat every ``tuning.heartbeat_interval`` seconds; a trial without one for
``tuning.grace_period`` seconds is failed by the next worker that looks
(``optuna.storages.fail_stale_trials``) and ``RetryHeartbeatStaleTrialCallback`` (Optuna 5's name
for ``RetryFailedTrialCallback``) queues a copy with the same parameters. Optuna 5's
``JournalStorage`` does not implement heartbeats (it is not a ``BaseHeartbeat``): a trial whose
worker is killed stays RUNNING in a journal file; :func:`is_journal` lets the caller report it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..params.base import ParameterError
from ..params.tuning import TuningParams

__all__ = ["RDB_PREFIXES", "is_journal", "is_remote", "open_storage", "redact"]

RDB_PREFIXES = ("postgresql://", "postgresql+psycopg2://", "postgres://", "sqlite:///")
REMOTE_PREFIXES = ("postgresql://", "postgresql+psycopg2://", "postgres://")


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and summaries)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def is_journal(url: str) -> bool:
    return not url.startswith(RDB_PREFIXES)


def is_remote(url: str) -> bool:
    """A storage that workers on other machines can reach (PostgreSQL)."""
    return url.startswith(REMOTE_PREFIXES)


def _fix(url: str) -> str:
    """SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; the project ships psycopg2."""
    for bare in ("postgres://", "postgresql://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare) :]
    return url


def open_storage(tuning: TuningParams, url: str, *, connect_timeout_s: int = 10) -> Any:
    """The Optuna storage for ``url`` (``tuning.storage_url()``), connected and checked."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if is_journal(url):
        path = Path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ParameterError(
                f"tuning.storage: cannot open the journal file {path} ({exc}); choose a writable path."
            ) from exc
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith(REMOTE_PREFIXES):
        kwargs["connect_args"] = {"connect_timeout": int(connect_timeout_s)}
    grace = tuning.grace_period or 2 * tuning.heartbeat_interval
    try:
        with _quiet(optuna):
            return RDBStorage(
                _fix(url),
                engine_kwargs=kwargs,
                heartbeat_interval=tuning.heartbeat_interval,
                grace_period=grace,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=tuning.max_retry),
            )
    except Exception as exc:  # sqlalchemy's OperationalError, ArgumentError, ImportError of a driver
        reason = " ".join(str(exc).split())[:300]
        raise ParameterError(
            f"tuning.storage: cannot use {redact(url)} ({type(exc).__name__}: {reason}). Start the "
            "database and check host, port, user and database name, or set tuning.storage to null "
            "for a journal file on this machine."
        ) from None


class _quiet:
    """Silence Optuna's experimental-feature warnings (heartbeat) while the storage is built."""

    def __init__(self, optuna):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._warnings = warnings
        self._exp = optuna.exceptions.ExperimentalWarning

    def __enter__(self):
        self._ctx.__enter__()
        self._warnings.simplefilter("ignore", self._exp)
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
