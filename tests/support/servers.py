"""Real app servers for tests and benchmarks: Gunicorn with the real config, and runserver.

``gunicorn_server(env)`` starts ``gunicorn -c app/gunicorn.conf.py`` (the production
config, Uvicorn workers) as its own process group on a free port (given through
``GUNICORN_PORT``, exactly as the operator does), waits until ``GET /health``
answers 200 and yields a :class:`RunningServer`. On exit it sends SIGTERM, waits for
the graceful stop and kills the group if anything is left. ``runserver(env)`` does the
same for ``manage.py runserver`` (RUN_MODE=development).

``server_env(**overrides)`` builds a clean production-like environment: a test
secret key, ``DJANGO_SECURE_SSL_REDIRECT=false`` (tests speak plain HTTP), a SQLite
file unless ``DATABASE_URL`` is given, and no stray GUNICORN_*/DJANGO_* variables
from the caller's shell. ``migrate(env)`` applies migrations with that env.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_DIR = REPO_ROOT / "app"
CONFIG_FILE = APP_DIR / "gunicorn.conf.py"
VENV_BIN = Path(sys.executable).parent
TEST_SECRET_KEY = "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ"
# Settings module that adds test-only URLs (e.g. /test/slow) to the real ones.
TEST_SETTINGS = "tests.support.django_settings"

_scratch_dirs: list[Path] = []


def _scratch_dir(prefix: str) -> Path:
    """A temporary directory removed when the process exits (logs stay readable until then)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _scratch_dirs.append(path)
    return path


@atexit.register
def _remove_scratch_dirs() -> None:
    for path in _scratch_dirs:
        shutil.rmtree(path, ignore_errors=True)


_SCRUB_PREFIXES = ("GUNICORN_", "DJANGO_", "DATABASE_URL", "RUN_MODE", "LOG_LEVEL",
                   "RUN_MIGRATIONS", "PAYMENT_PROVIDER_")


def server_env(database_url: str | None = None, **overrides: str) -> dict[str, str]:
    """A production-like environment for a server subprocess (see module docstring)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    if database_url is None:
        db_dir = _scratch_dir("coffee-db-")
        database_url = f"sqlite:///{db_dir / 'db.sqlite3'}"
    env.update(
        {
            "RUN_MODE": "production",
            "DJANGO_SECRET_KEY": TEST_SECRET_KEY,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": database_url,
            "GUNICORN_WORKERS": "2",
            # Repo root first so `tests.support.*` settings/urlconfs import in the server.
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(APP_DIR)]),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def migrate(env: Mapping[str, str]) -> None:
    """Apply all migrations to env's DATABASE_URL (what the entrypoint does)."""
    proc = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=APP_DIR, env=dict(env), capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"migrate failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")


_migrated_template: Path | None = None


def migrated_sqlite_url() -> str:
    """URL of a new SQLite file with every migration applied.

    Migrating costs seconds per server; this migrates one template per test process
    and hands out copies, for tests that need a ready database but do not test
    migrating itself.
    """
    global _migrated_template
    if _migrated_template is None:
        env = server_env()
        migrate(env)
        _migrated_template = Path(env["DATABASE_URL"].removeprefix("sqlite:///"))
    target = _scratch_dir("coffee-db-") / "db.sqlite3"
    shutil.copyfile(_migrated_template, target)
    return f"sqlite:///{target}"


@dataclass
class RunningServer:
    """A started server: its URL, process (master) and captured stdout/stderr files."""

    base_url: str
    port: int
    proc: subprocess.Popen
    stdout_path: Path
    stderr_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logs(self) -> str:
        return f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()}"

    def worker_pids(self) -> list[int]:
        """PIDs of the master's direct children (Gunicorn workers), from /proc."""
        return children_of(self.proc.pid)


def children_of(pid: int) -> list[int]:
    """Direct child PIDs of ``pid`` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def wait_for_http(
    url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0, status: int = 200,
    describe: object = None,
) -> None:
    """Poll ``url`` until it returns ``status``; fail early if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode} before {url} answered\n"
                f"{describe() if callable(describe) else ''}"
            )
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == status:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(
        f"{url} did not answer {status} within {timeout}s (last: {last})\n"
        f"{describe() if callable(describe) else ''}"
    )


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    """Send ``sig`` to the process, wait, then kill its whole group if it hangs."""
    if proc.poll() is None:
        proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    if proc.poll() is None or _group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    return proc.returncode


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def spawn_server(
    cmd: Sequence[str], env: Mapping[str, str], port: int, ready_path: str = "/health",
    ready_timeout: float = 60.0, stop_timeout: float = 40.0, cwd: Path = APP_DIR,
) -> Iterator[RunningServer]:
    """Start any server command in its own process group; yield once ready_path is 200."""
    logdir = _scratch_dir("coffee-server-")
    out, err = logdir / "stdout.log", logdir / "stderr.log"
    with out.open("wb") as fout, err.open("wb") as ferr:
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=dict(env), stdout=fout, stderr=ferr,
            start_new_session=True,  # own process group: stop_process can reap workers too
        )
    server = RunningServer(f"http://127.0.0.1:{port}", port, proc, out, err, dict(env))
    try:
        wait_for_http(server.url(ready_path), proc, ready_timeout, describe=server.logs)
        yield server
    finally:
        stop_process(proc, signal.SIGTERM, stop_timeout)


@contextmanager
def gunicorn_server(
    env: Mapping[str, str] | None = None,
    *,
    extra_args: Sequence[str] = (),
    ready_path: str = "/health",
    ready_timeout: float = 60.0,
    stop_timeout: float = 40.0,
) -> Iterator[RunningServer]:
    """Run real Gunicorn with app/gunicorn.conf.py on a free port (GUNICORN_PORT)."""
    env = dict(env if env is not None else server_env())
    port = int(env["GUNICORN_PORT"]) if env.get("GUNICORN_PORT") else free_port()
    env["GUNICORN_PORT"] = str(port)
    cmd = [str(VENV_BIN / "gunicorn"), "-c", str(CONFIG_FILE), *extra_args]
    with spawn_server(cmd, env, port, ready_path, ready_timeout, stop_timeout) as server:
        yield server


@contextmanager
def runserver(
    env: Mapping[str, str] | None = None,
    *,
    ready_path: str = "/health",
    ready_timeout: float = 60.0,
) -> Iterator[RunningServer]:
    """Run ``manage.py runserver 127.0.0.1:<free port> --noreload`` (development mode)."""
    env = dict(env if env is not None else server_env())
    env.setdefault("RUN_MODE", "development")
    port = free_port()
    cmd = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    with spawn_server(cmd, env, port, ready_path, ready_timeout, 15.0) as server:
        yield server
