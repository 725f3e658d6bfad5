"""app/entrypoint.sh run for real: which server it execs, migrations, superuser, refusal."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.servers import (
    APP_DIR,
    VENV_BIN,
    migrated_sqlite_url,
    server_env,
    spawn_server,
)

pytestmark = pytest.mark.slow

ENTRYPOINT = APP_DIR / "entrypoint.sh"


def entry_env(**overrides: str) -> dict[str, str]:
    env = server_env(**overrides)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env.setdefault("GUNICORN_PORT", str(free_port()))
    return env


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def sqlite_path(env: dict[str, str]) -> str:
    return env["DATABASE_URL"].removeprefix("sqlite:///")


def superusers(env: dict[str, str], username: str) -> int:
    with sqlite3.connect(sqlite_path(env)) as db:
        return db.execute(
            "SELECT count(*) FROM auth_user WHERE username = ? AND is_superuser", (username,)
        ).fetchone()[0]


def test_production_execs_gunicorn_after_migrating() -> None:
    env = entry_env()
    port = int(env["GUNICORN_PORT"])
    with spawn_server([str(ENTRYPOINT)], env, port, "/health/ready") as server:
        # exec: the PID we started is now Gunicorn's master, with its workers.
        argv = cmdline(server.proc.pid)
        assert any(part.endswith("gunicorn") for part in argv), argv
        assert str(APP_DIR / "gunicorn.conf.py") in argv
        assert len(server.worker_pids()) == 2
        assert "starting Gunicorn" in server.stderr()
        # Migrations ran: readiness (which requires them) answered 200 above.
        assert httpx.get(server.url("/health/ready")).json()["status"] == "ok"


def test_development_execs_runserver() -> None:
    env = entry_env(RUN_MODE="development", DATABASE_URL=migrated_sqlite_url())
    port = int(env["GUNICORN_PORT"])
    with spawn_server([str(ENTRYPOINT)], env, port) as server:
        argv = cmdline(server.proc.pid)
        assert argv[-2:] == ["runserver", f"0.0.0.0:{port}"], argv
        assert "manage.py" in argv
        assert "starting Django runserver" in server.stderr()
        # runserver's own response header, not Gunicorn/Uvicorn's
        assert httpx.get(server.url("/health")).headers["server"].startswith("WSGIServer")


def test_superuser_created_once_and_second_start_succeeds() -> None:
    env = entry_env(
        DATABASE_URL=migrated_sqlite_url(),  # migrate is then a quick no-op
        DJANGO_SUPERUSER_USERNAME="barista",
        DJANGO_SUPERUSER_PASSWORD="s3cret-pass",
        DJANGO_SUPERUSER_EMAIL="barista@example.com",
        GUNICORN_WORKERS="1",
    )
    port = int(env["GUNICORN_PORT"])
    with spawn_server([str(ENTRYPOINT)], env, port) as first:
        assert "superuser: created 'barista'" in first.stdout()
    assert superusers(env, "barista") == 1
    with spawn_server([str(ENTRYPOINT)], env, port) as second:
        assert "already exists" in second.stdout()
    assert second.proc.returncode == 0
    assert superusers(env, "barista") == 1


def test_partial_superuser_settings_are_rejected_by_name() -> None:
    env = entry_env(DJANGO_SUPERUSER_USERNAME="barista", DATABASE_URL=migrated_sqlite_url())
    proc = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode != 0
    assert "DJANGO_SUPERUSER_PASSWORD" in proc.stderr
    assert "DJANGO_SUPERUSER_EMAIL" in proc.stderr


def test_run_migrations_false_skips_them() -> None:
    env = entry_env(RUN_MIGRATIONS="false", GUNICORN_WORKERS="1")
    port = int(env["GUNICORN_PORT"])
    with spawn_server([str(ENTRYPOINT)], env, port) as server:
        ready = httpx.get(server.url("/health/ready"))
        assert "not applying migrations" in server.stderr()
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["migrations"]


def test_missing_secret_key_in_production_exits_nonzero_with_the_message() -> None:
    env = entry_env()
    del env["DJANGO_SECRET_KEY"]
    proc = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 78
    assert "DJANGO_SECRET_KEY is required in production" in proc.stderr
    assert not Path(sqlite_path(env)).exists()  # nothing ran: no migration, no server


def test_invalid_run_mode_warns_and_runs_production() -> None:
    env = entry_env(RUN_MODE="staging", GUNICORN_WORKERS="1", RUN_MIGRATIONS="0")
    port = int(env["GUNICORN_PORT"])
    with spawn_server([str(ENTRYPOINT)], env, port) as server:
        assert any(p.endswith("gunicorn") for p in cmdline(server.proc.pid))
        assert "RUN_MODE='staging' is invalid" in server.stderr()
