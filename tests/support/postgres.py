"""A throwaway real PostgreSQL server from Debian's binaries, for tests and benchmarks.

``postgres_server()`` runs ``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/*/bin``
in a temporary directory, listening only on 127.0.0.1 on a free port with trust
auth, and always stops it and removes its files. PostgreSQL refuses to run as root,
so as root the binaries run as the ``postgres`` system user via ``runuser``.
Durability is switched off (fsync, synchronous_commit): it is a scratch server.

    with postgres_server() as pg:
        url = pg.create_database("orders")   # postgres://postgres@127.0.0.1:PORT/orders
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port

SUPERUSER = "postgres"

#: A detached watchdog: stops the server and deletes its files if the process that
#: started it dies without cleaning up (SIGTERM or SIGKILL to pytest skips fixture
#: teardown, and pg_ctl's daemonized server would otherwise run on). Arguments: owner pid,
#: root dir, then the stop command.
_GUARD = """
import os, shutil, subprocess, sys, time
owner, root, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
while os.path.exists(root):
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        subprocess.run(stop, capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
        break
    time.sleep(1)
"""


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries are missing (run scripts/system-deps.sh) or the server failed."""


def postgres_bin_dir() -> Path:
    """Newest installed server version's bin directory."""
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0,
    )
    dirs = [d for d in dirs if os.path.exists(os.path.join(d, "initdb"))]
    if not dirs:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin; "
            "install them with scripts/system-deps.sh (Debian package 'postgresql')"
        )
    return Path(dirs[-1])


def _as_db_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--", *cmd]
    return cmd


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(_as_db_user(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        output = proc.stderr or proc.stdout
        raise PostgresUnavailable(f"{what} failed ({proc.returncode}): {output}")


@dataclass
class PostgresServer:
    """A running scratch server; ``url(db)`` is a DATABASE_URL for one of its databases."""

    host: str
    port: int
    data_dir: Path
    bin_dir: Path
    options: str = ""

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server (data kept), e.g. to watch readiness turn 503."""
        _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
             "pg_ctl stop")

    def start(self) -> None:
        """Start it again after :meth:`stop`, same port and data."""
        _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-o", self.options, "-l",
              str(self.data_dir.parent / "server.log"), "-w", "-t", "60", "start"], "pg_ctl start")
        _wait_accepting(self)

    def create_database(self, name: str) -> str:
        """Create an empty database (dropping any old one of that name); return its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def postgres_server(max_connections: int = 300) -> Iterator[PostgresServer]:
    """Start a scratch PostgreSQL on a free 127.0.0.1 port; stop and delete it afterwards."""
    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="coffee-pg-"))
    data_dir = root / "data"
    port = free_port()
    if os.geteuid() == 0:
        pw = pwd.getpwnam(SUPERUSER)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    options = " ".join(
        [
            f"-p {port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={root}",
            f"-c max_connections={max_connections}",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
        ]
    )
    started = False
    guard: subprocess.Popen[bytes] | None = None
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER, "-A", "trust",
             "-E", "UTF8", "--no-sync"],
            "initdb",
        )
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options, "-l",
             str(root / "server.log"), "-w", "-t", "60", "start"],
            "pg_ctl start",
        )
        started = True
        stop = _as_db_user([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate",
                            "stop"])
        guard = subprocess.Popen(
            [sys.executable, "-c", _GUARD, str(os.getpid()), str(root), *stop],
            start_new_session=True,  # not in pytest's process group: survives its signals
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = PostgresServer("127.0.0.1", port, data_dir, bin_dir, options)
        _wait_accepting(server)
        yield server
    finally:
        if started:  # (a no-op when a test already stopped it)
            subprocess.run(
                _as_db_user([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w",
                             "stop"]),
                capture_output=True, check=False,
            )
        shutil.rmtree(root, ignore_errors=True)
        if guard is not None:
            guard.terminate()
            guard.wait()


def _wait_accepting(server: PostgresServer, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
