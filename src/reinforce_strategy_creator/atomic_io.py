"""Small crash-safe file primitives shared by the registry, the paper account and the yfinance cache.

Why hand-written: the standard library gives the pieces (``os.replace``, ``os.fsync``,
``fcntl.flock``) but no single well-kept package combines them the way the commit
protocols in :mod:`.deployment.state` and :mod:`.deployment.registry` need (atomic replace *and* fsync of the
parent directory, append with fsync, exclusive process lock, a log's unwanted tail moved aside
instead of cut off). Each function is a few lines.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: ``<log name>`` + this + a UTC timestamp: where :func:`set_aside_tail` keeps the bytes it removes
TORN_SUFFIX = ".torn-"


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so that a rename/creation inside it survives power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old or the new file, never half.

    Temp file in the same directory -> write -> fsync -> ``os.replace`` -> fsync directory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def append_lines_durable(path: Path, lines: list[str]) -> int:
    """Append complete lines (each without trailing newline) and fsync. Returns new file size."""
    path = Path(path)
    created = not path.exists()
    with open(path, "ab") as fh:
        if lines:
            fh.write("".join(line + "\n" for line in lines).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        size = fh.tell()
    if created:
        fsync_dir(path.parent)
    return size


def set_aside_tail(path: Path, keep: int, why: str) -> Path | None:
    """Cut the append-only log ``path`` back to its first ``keep`` bytes without losing the rest.

    The bytes past ``keep`` are first written (and fsync'd) to a new file beside the log,
    ``<name>.torn-<UTC timestamp>``, then the log is truncated; a warning names that file and
    says ``why``. Returns the new file, or ``None`` when the log has nothing past ``keep``.
    Callers hold the log's writer lock.
    """
    path = Path(path)
    with open(path, "r+b") as fh:
        fh.seek(keep)
        tail = fh.read()
        if not tail:
            return None
        aside = _new_torn_file(path)
        with open(aside, "wb") as out:
            out.write(tail)
            out.flush()
            os.fsync(out.fileno())
        fsync_dir(path.parent)
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    logger.warning(
        "%s: %s; its last %d byte(s) (from offset %d) were moved to %s, nothing was deleted.",
        path,
        why,
        len(tail),
        keep,
        aside,
    )
    return aside


def _new_torn_file(path: Path) -> Path:
    """A name beside ``path`` no file has yet: ``<name>.torn-<UTC timestamp>`` (``-<n>`` added
    when two tails are set aside within the same microsecond)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    base = path.with_name(f"{path.name}{TORN_SUFFIX}{stamp}")
    candidate, n = base, 1
    while True:
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")


def remove_stale_temps(folder: Path) -> None:
    """Delete temp files left by a writer killed before its ``os.replace``."""
    for tmp in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) so two processes never write at once.

    The lock is released by the kernel when the process dies, so a SIGKILL never leaves
    a stale lock behind.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
