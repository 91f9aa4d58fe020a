"""A fork server for the kill tests: the worker's imports are paid once, each run is a new process.

Why: the kill tests start some 40 worker runs; each fresh interpreter spends 2-4 s of CPU
importing torch, pandas, scipy and Kedro before it processes its first bar, most of the test's
time. Here a worker script started with ``--serve`` imports everything once and then, for each
command on its stdin, ``os.fork()``\\s a child that runs one ``main(args)`` and exits. Each run is
still a separate process that the test SIGKILLs at a moment of its choosing, that starts from
what is on disk, and that shares nothing writable with the others (the server itself never runs a
worker's code, so a child inherits only imported modules, no open files, locks or threads).

Protocol: the test writes ``ARGS...<TAB>FIFO`` on the server's stdin; the server forks and writes
``pid PID``; the child writes its own stdout to the named pipe FIFO; when the child ends the server
writes ``exit PID CODE`` (``CODE`` as ``Popen.returncode``: negative for a signal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path


def serve(main: Callable[[list[str]], None]) -> None:
    """Worker side: fork one child per command line on stdin, report pid and exit code."""
    for command in sys.stdin:
        words, fifo = command.rstrip("\n").rsplit("\t", 1)
        pid = os.fork()
        if pid == 0:  # the child: one run with stdout on the fifo
            code = 0
            try:
                fd = os.open(fifo, os.O_WRONLY)
                os.dup2(fd, 1)
                os.close(fd)
                sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
                main(words.split(" ") if words else [])
                sys.stdout.flush()
            except BaseException:  # noqa: BLE001 - reported on stderr, the exit code says it failed
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        print("pid", pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print("exit", pid, os.waitstatus_to_exitcode(status), flush=True)


class Run:
    """One forked run: its progress lines (``readline``/``rest``), ``kill`` and ``wait``."""

    def __init__(self, server: ForkServer, pid: int, stream) -> None:
        self.server, self.pid, self.stream = server, pid, stream
        self.returncode: int | None = None

    def readline(self) -> str:
        return self.stream.readline()

    def __iter__(self):
        return iter(self.stream.readline, "")

    def kill(self) -> None:
        """SIGKILL the run unless it already ended (the server has not reported its exit yet, and
        pids are not reused that fast, so the pid is still this run's)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def rest(self) -> str:
        """What the run printed after the last line read, up to its end."""
        return self.stream.read()

    def wait(self) -> int:
        if self.returncode is None:
            self.stream.read()
            self.stream.close()
            reply = self.server.proc.stdout.readline().split()
            if reply[:2] != ["exit", str(self.pid)]:
                raise AssertionError(f"fork server said {reply!r}:\n{self.server.log_tail()}")
            self.returncode = int(reply[2])
        return self.returncode


class ForkServer:
    """Test side: ``with ForkServer(worker, tmp) as server: run = server.start(args)``."""

    def __init__(self, worker: Path, tmp: Path) -> None:
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.log = self.tmp / "forkserver.log"
        self.count = 0
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(worker), "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:]

    def start(self, *args: str) -> Run:
        self.count += 1
        fifo = self.tmp / f"run{self.count}.fifo"
        os.mkfifo(fifo)
        self.proc.stdin.write(" ".join(args) + "\t" + str(fifo) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().split()
        if len(reply) != 2 or reply[0] != "pid":
            raise AssertionError(f"fork server said {reply!r}:\n{self.log_tail()}")
        stream = open(fifo)  # noqa: SIM115 - closed by Run.wait; blocks until the child opens it
        return Run(self, int(reply[1]), stream)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            self.proc.kill()
        self.close()
