"""Shared pieces of the app benchmarks: the servers under test and a wrk driver.

Servers (all real processes on 127.0.0.1, production settings, started through
tests.support.servers so they run exactly like the tests' servers):

  runserver   manage.py runserver (Django's threaded development server)
  uvicorn     Gunicorn + our UvicornWorker with app/gunicorn.conf.py  (production)
  stock       the same, but stock Django: django.core.asgi handler and the stock
              MIDDLEWARE list (bench/app_stock_settings.py): the "before" picture
  sync        Gunicorn's sync worker with the WSGI entry coffee.wsgi
  asgi        Gunicorn's native asgi worker (gunicorn >= 24) with our ASGI app
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.ports import free_port  # noqa: E402
from tests.support.servers import (  # noqa: E402
    APP_DIR,
    CONFIG_FILE,
    VENV_BIN,
    RunningServer,
    spawn_server,
)

ASGI_APP = "coffee_payment.asgi:application"
STOCK_APP = "django.core.asgi:get_asgi_application()"
WSGI_APP = "coffee.wsgi:application"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_average() -> str:
    """The machine's 1-minute load average and core count: how noisy the run was."""
    import os

    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def set_priority(nice: int, pgid: int | None = None) -> None:
    """Renice this process (its children, wrk, inherit it) or a server's process group.

    On a machine shared with other work, every server under test gets the same priority and
    so the same protection from the neighbours (only one server is under load at a time).
    """
    import os

    if nice:
        if pgid is None:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        else:
            os.setpriority(os.PRIO_PGRP, pgid, nice)


def process_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, /proc/PID/stat fields after "(comm)") of every live process."""
    import os

    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                yield int(pid), f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue


def _cpu_seconds(matches: Callable[[int, list[str]], bool]) -> float:
    """user + system CPU seconds of the live processes ``matches(pid, fields)`` selects."""
    import os

    # fields after "(comm)": state ppid pgrp ... utime (11) stime (12)
    ticks = sum(int(f[11]) + int(f[12]) for pid, f in process_stats() if matches(pid, f))
    return ticks / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system, all threads) of the live processes in a process group.

    A server's CPU per request is the robust figure on a shared machine: req/s moves with the
    neighbours' load, the CPU an answer costs much less. (Exited processes are not counted:
    read it around a run without worker recycling.)
    """
    return _cpu_seconds(lambda pid, fields: int(fields[2]) == pgid)


def pids_cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of these processes and their live children (one level)."""
    wanted = set(pids)
    return _cpu_seconds(lambda pid, fields: pid in wanted or int(fields[1]) in wanted)


def _cpu_line() -> list[int]:
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy (not idle/iowait) since boot, from /proc/stat; this
    includes steal (time the hypervisor gave this VM's CPUs to someone else)."""
    import os

    values = _cpu_line()
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_steal_seconds() -> float:
    """CPU time the hypervisor took from this VM's cores since boot (/proc/stat steal)."""
    import os

    return _cpu_line()[7] / os.sysconf("SC_CLK_TCK")


@contextmanager
def app_server(
    kind: str, env: Mapping[str, str], workers: int, nice: int = 0
) -> Iterator[RunningServer]:
    """Start one server kind (see module docstring) bound to 127.0.0.1 only."""
    env = dict(env)
    port = free_port()
    env["GUNICORN_PORT"] = str(port)
    env["GUNICORN_WORKERS"] = str(workers)
    if kind == "runserver":
        cmd = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    else:
        extra = {
            "uvicorn": [ASGI_APP],
            "stock": [STOCK_APP],
            "sync": ["-k", "sync", WSGI_APP],
            "asgi": ["-k", "asgi", ASGI_APP],
        }[kind]
        if kind == "stock":
            env["DJANGO_SETTINGS_MODULE"] = "bench.app_stock_settings"
        cmd = [str(VENV_BIN / "gunicorn"), "-c", str(CONFIG_FILE), "-b", f"127.0.0.1:{port}",
               *extra]
    with spawn_server(cmd, env, port, cwd=APP_DIR) as server:
        set_priority(nice, server.proc.pid)  # its own process group (start_new_session)
        yield server


@dataclass
class Load:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors + non-2xx responses
    detail: str = ""  # what the errors were, as wrk reports them
    cpu_ms: float | None = None  # server CPU per request (all its processes), when measured

    def line(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        cpu = f"  CPU {self.cpu_ms:5.2f} ms/req" if self.cpu_ms is not None else ""
        return (f"{self.rps:8.0f} req/s  p50 {self.p50_ms:7.1f} ms  p99 {self.p99_ms:7.1f} ms"
                f"{cpu}  errors {self.errors}{detail}")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> Load:
    """Requests/sec, latency percentiles and errors from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    detail = []
    socket_errors = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
    if m := re.search(socket_errors, output):
        errors += sum(int(g) for g in m.groups())
        detail.append(m.group(0))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(m.group(1))
        detail.append(m.group(0))
    return Load(total, rps, p50, p99, errors, "; ".join(detail))


def wrk(url: str, *, connections: int, seconds: float, script: Path | None = None,
        headers: Mapping[str, str] | None = None, threads: int = 2) -> Load:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run scripts/system-deps.sh (apt-get install -y wrk)")
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
    output = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def summary(loads: list[Load]) -> Load:
    """Median over rounds (robust to a noisy neighbour stealing one round)."""
    return Load(
        requests=sum(x.requests for x in loads),
        rps=statistics.median(x.rps for x in loads),
        p50_ms=statistics.median(x.p50_ms for x in loads),
        p99_ms=statistics.median(x.p99_ms for x in loads),
        errors=sum(x.errors for x in loads),
        cpu_ms=(statistics.median(x.cpu_ms for x in loads)  # type: ignore[type-var]
                if all(x.cpu_ms is not None for x in loads) else None),
    )
