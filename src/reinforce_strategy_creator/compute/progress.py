"""Progress of a map in the driver: jobs done / running / queued and env steps/s over all workers.

On a terminal one live line is redrawn in place; anywhere else (a log file, CI, a pipe) one plain
line at most every ``PROGRESS_LOG_INTERVAL_S`` seconds plus a final line (the pattern, and the
interval, of ``agents.tracking``). Steps/s is the env steps reported by finished jobs (a result
mapping with an int ``steps``) divided by the map's wall time: the throughput summed over the workers.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["JobProgress", "PROGRESS_LOG_INTERVAL_S", "job_steps"]

PROGRESS_LOG_INTERVAL_S = 15.0  # at most one progress line this often when not on a terminal


def job_steps(result: Any) -> int:
    """The env steps a job reports (``result["steps"]``), 0 when it reports none."""
    if isinstance(result, Mapping):
        steps = result.get("steps")
        if isinstance(steps, int) and not isinstance(steps, bool):
            return steps
    return 0


class JobProgress:
    """``show(done, running, steps)`` while a map runs, ``close()`` at its end."""

    def __init__(self, total: int, label: str, backend: str, stream: Any = None, enabled: bool = True):
        self.total, self.label, self.backend = total, label, backend
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(callable(isatty) and isatty())
        self.enabled = enabled and total > 0
        self.t0 = self.last = time.perf_counter()
        self.state = (0, 0, 0)
        self.written: tuple[int, int, int] | None = None

    def line(self) -> str:
        done, running, steps = self.state
        queued = max(self.total - done - running, 0)
        elapsed = time.perf_counter() - self.t0
        rate = steps / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.label} [{self.backend}]: {done}/{self.total} done, {running} running, {queued} queued, "
            f"{rate:,.0f} env steps/s, {elapsed:.0f}s"
        )

    def show(self, done: int, running: int, steps: int) -> None:
        self.state = (done, running, steps)
        if not self.enabled:
            return
        if self.live:
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
            self.written = self.state
        elif time.perf_counter() - self.last >= PROGRESS_LOG_INTERVAL_S:
            self._write()

    def _write(self) -> None:
        self.last = time.perf_counter()
        self.written = self.state
        self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.live:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()
        elif self.written != self.state:
            self._write()
