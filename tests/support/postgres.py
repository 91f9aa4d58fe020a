"""A throwaway PostgreSQL server for the tuning tests (``initdb`` + ``pg_ctl`` on PATH).

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` (or ``nobody``)
user in a fresh folder under /tmp that this user owns. Stopped with ``pg_ctl stop -m immediate``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def binaries() -> dict[str, str] | None:
    """``{"initdb": path, "pg_ctl": path}`` from PATH or /usr/lib/postgresql/*/bin, or None."""
    extra = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    path = os.pathsep.join([os.environ.get("PATH", ""), *map(str, extra)])
    found = {name: shutil.which(name, path=path) for name in ("initdb", "pg_ctl")}
    return found if all(found.values()) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists for initdb")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server on a free port of 127.0.0.1; yield its URL (user postgres, trust auth)."""
    bins = binaries()
    assert bins is not None
    user = _user()
    root = Path(tempfile.mkdtemp(prefix="rsc-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    kw: dict = {"capture_output": True, "text": True}
    if user is not None:
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
        kw.update(user=user.pw_uid, group=user.pw_gid, env={**os.environ, "HOME": str(root)})
    port = free_port()
    try:
        subprocess.run(
            [bins["initdb"], "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"], check=True, **kw
        )
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [bins["pg_ctl"], "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"],
            check=True,
            **kw,
        )
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([bins["pg_ctl"], "-D", str(data), "stop", "-m", "immediate"], check=False, **kw)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr or exc.stdout}") from exc
    finally:
        shutil.rmtree(root, ignore_errors=True)
