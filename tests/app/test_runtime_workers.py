"""Real Gunicorn with the real config: worker processes, load spreading, JSON logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import httpload
from tests.support.servers import (
    TEST_SETTINGS,
    RunningServer,
    gunicorn_server,
    migrated_sqlite_url,
    server_env,
)

pytestmark = pytest.mark.slow


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.fixture(scope="module")
def three_workers() -> Iterator[RunningServer]:
    env = server_env(
        migrated_sqlite_url(),
        GUNICORN_WORKERS="3",
        GUNICORN_MAX_REQUESTS="bogus",  # invalid: default (0) plus one warning
        DJANGO_SETTINGS_MODULE=TEST_SETTINGS,
    )
    with gunicorn_server(env) as server:
        yield server


def test_exactly_three_workers_under_one_master(three_workers: RunningServer) -> None:
    master = three_workers.proc.pid
    workers = three_workers.worker_pids()
    assert len(workers) == 3, workers
    assert all(parent_pid(pid) == master for pid in workers)
    # Nothing else in the process group: one master, its three workers.
    assert all(not Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
               for pid in workers)


def test_concurrent_requests_are_answered_by_several_workers(
    three_workers: RunningServer,
) -> None:
    # block=1 stalls the answering worker's event loop for 0.5 s, so connections
    # opened meanwhile (50 ms apart, all overlapping) must be accepted by the others.
    async def one(delay: float) -> httpload.Result:
        await asyncio.sleep(delay)
        return await httpload.request(
            "127.0.0.1", three_workers.port, "/test/slow?seconds=0.5&block=1"
        )

    async def burst() -> list[httpload.Result]:
        return await asyncio.gather(*(one(i * 0.05) for i in range(9)))

    results = asyncio.run(burst())
    assert [r.kind for r in results] == [httpload.OK] * 9
    pids = {json.loads(r.body)["pid"] for r in results}
    assert len(pids) > 1
    assert pids <= set(three_workers.worker_pids())


def test_invalid_variable_is_logged_once_as_json(three_workers: RunningServer) -> None:
    lines = [json.loads(line) for line in three_workers.stderr().splitlines() if line.strip()]
    warnings = [r for r in lines if r["level"] == "WARNING" and "GUNICORN_MAX_REQUESTS" in
                r["message"]]
    assert len(warnings) == 1, warnings
    assert "'bogus'" in warnings[0]["message"]
    assert warnings[0]["logger"] == "gunicorn.error"


def test_every_log_line_is_json_with_the_same_keys(three_workers: RunningServer) -> None:
    httpx.get(three_workers.url("/health"))
    for stream in (three_workers.stdout(), three_workers.stderr()):
        for line in filter(str.strip, stream.splitlines()):
            record = json.loads(line)  # a non-JSON line fails here
            assert {"time", "level", "logger", "pid", "message"} <= record.keys(), record
            assert "color_message" not in record
    access = [json.loads(line) for line in three_workers.stdout().splitlines() if line]
    assert any("GET /health" in r["message"] for r in access)
