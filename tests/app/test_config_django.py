"""Django settings from the environment: deploy checks, the secret key rule, the
production security headers and WhiteNoise static files, on real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import (
    APP_DIR,
    VENV_BIN,
    RunningServer,
    gunicorn_server,
    migrated_sqlite_url,
    server_env,
)


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=APP_DIR, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )


def production_env(**overrides: str) -> dict[str, str]:
    """What an operator deploys: real hosts, SSL redirect left at its default (on)."""
    env = server_env(**{"DJANGO_ALLOWED_HOSTS": "coffee.example.com", **overrides})
    env.pop("DJANGO_SECURE_SSL_REDIRECT")
    return env


def test_check_deploy_has_no_warnings_in_production() -> None:
    proc = manage(production_env(), "check", "--deploy", "--fail-level", "WARNING")
    assert proc.returncode == 0, proc.stderr
    assert "System check identified no issues (0 silenced)." in proc.stdout


def test_check_deploy_flags_debug() -> None:
    """The check above is meaningful: the same command fails once DEBUG is on."""
    proc = manage(production_env(DJANGO_DEBUG="true"), "check", "--deploy", "--fail-level",
                  "WARNING")
    assert proc.returncode != 0
    assert "security.W018" in proc.stderr + proc.stdout


def test_production_refuses_to_start_without_secret_key() -> None:
    env = server_env()
    del env["DJANGO_SECRET_KEY"]
    proc = subprocess.run(
        [str(VENV_BIN / "gunicorn"), "-c", str(APP_DIR / "gunicorn.conf.py")],
        cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 78
    errors = [json.loads(line) for line in proc.stderr.splitlines() if '"ERROR"' in line]
    assert any("DJANGO_SECRET_KEY is required in production" in e["message"] for e in errors)
    assert "Booting worker" not in proc.stderr  # refused before any worker started


@pytest.mark.parametrize("mode", [{"RUN_MODE": "development"}, {"DJANGO_DEBUG": "true"}])
def test_development_and_debug_get_a_throwaway_key(mode: dict[str, str]) -> None:
    env = server_env(**mode)
    del env["DJANGO_SECRET_KEY"]
    proc = manage(env, "check")
    assert proc.returncode == 0, proc.stderr


def test_unparsable_database_url_is_a_clear_error() -> None:
    proc = manage(server_env("nosuchdb://x/y"), "check")
    assert proc.returncode != 0
    assert "nosuchdb" in proc.stderr


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Production server with SSL redirect on and collected static files."""
    static_root = tmp_path_factory.mktemp("static")
    env = production_env(DJANGO_ALLOWED_HOSTS="127.0.0.1", DJANGO_STATIC_ROOT=str(static_root),
                         DATABASE_URL=migrated_sqlite_url())
    proc = manage(env, "collectstatic", "--noinput", "-v", "0")
    assert proc.returncode == 0, proc.stderr
    with gunicorn_server(env) as server:
        server.env["static_root"] = str(static_root)
        yield server


def test_plain_http_is_redirected_to_https_except_probes(hardened: RunningServer) -> None:
    response = httpx.get(hardened.url("/admin/login/"))
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://127.0.0.1")
    assert httpx.get(hardened.url("/health")).status_code == 200
    assert httpx.get(hardened.url("/health/ready")).status_code == 200


def test_security_headers_behind_a_tls_proxy(hardened: RunningServer) -> None:
    response = httpx.get(hardened.url("/admin/login/"), headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    cookie = response.headers["set-cookie"]
    assert "csrftoken=" in cookie and "Secure" in cookie


def test_whitenoise_serves_hashed_static_files(hardened: RunningServer) -> None:
    manifest = json.loads(
        (Path(hardened.env["static_root"]) / "staticfiles.json").read_text()
    )["paths"]
    hashed = manifest["admin/css/base.css"]
    assert hashed != "admin/css/base.css"
    proto = {"X-Forwarded-Proto": "https"}
    response = httpx.get(hardened.url(f"/static/{hashed}"), headers=proto)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "immutable" in response.headers["cache-control"]
    gz = httpx.get(hardened.url(f"/static/{hashed}"),
                   headers={**proto, "Accept-Encoding": "gzip"})
    assert gz.headers.get("content-encoding") == "gzip"
    # The admin page links the hashed name.
    page = httpx.get(hardened.url("/admin/login/"), headers=proto).text
    assert f"/static/{hashed}" in page
