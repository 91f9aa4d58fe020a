"""Small crash-safe file primitives shared by the registry, the paper account and the yfinance cache.

Why hand-written: the standard library gives the pieces (``os.replace``, ``os.fsync``,
``fcntl.flock``) but no single well-kept package combines them the way the commit
protocols in :mod:`.deployment.state` and :mod:`.deployment.registry` need (atomic replace *and* fsync of the
parent directory, append with fsync, exclusive process lock). Each function is a few lines.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
