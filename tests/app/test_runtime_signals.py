"""SIGTERM and SIGINT drain gracefully: in-flight requests finish, new ones are refused."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import pytest

from tests.support import httpload
from tests.support.servers import TEST_SETTINGS, gunicorn_server, migrated_sqlite_url, server_env

pytestmark = pytest.mark.slow

GRACEFUL_TIMEOUT = 10
IN_FLIGHT = 110  # "100+ concurrent connections"
SLOW_SECONDS = 3.0


def connect_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_in_flight_requests_and_refuses_new_ones(sig: signal.Signals) -> None:
    env = server_env(
        migrated_sqlite_url(),
        GUNICORN_WORKERS="2",
        GUNICORN_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT),
        DJANGO_SETTINGS_MODULE=TEST_SETTINGS,
    )
    with gunicorn_server(env) as server:
        port, master = server.port, server.proc

        async def scenario() -> dict:
            slow = [
                asyncio.ensure_future(
                    httpload.request("127.0.0.1", port, f"/test/slow?seconds={SLOW_SECONDS}")
                )
                for _ in range(IN_FLIGHT)
            ]
            # Fresh connections keep arriving across the signal.
            load = asyncio.ensure_future(
                httpload.closed_loop("127.0.0.1", port, "/health", concurrency=8, duration=2.5)
            )
            await asyncio.sleep(SLOW_SECONDS / 2)
            assert not any(t.done() for t in slow), "slow requests finished too early"
            signalled = time.monotonic()
            master.send_signal(sig)
            # Within a moment every worker has closed the listener, while the slow
            # requests are still running: a new connection is refused, not queued.
            refused_at = None
            while time.monotonic() - signalled < SLOW_SECONDS / 2 - 0.2:
                if await asyncio.to_thread(connect_refused, port):
                    refused_at = time.monotonic() - signalled
                    break
                await asyncio.sleep(0.02)
            refused_while_draining = refused_at is not None and not all(t.done() for t in slow)
            results = await asyncio.gather(*slow)
            return {
                "results": results,
                "load": await load,
                "refused_while_draining": refused_while_draining,
                "signalled": signalled,
            }

        outcome = asyncio.run(scenario())
        returncode = master.wait(timeout=GRACEFUL_TIMEOUT + 5)
        exited_after = time.monotonic() - outcome["signalled"]

        kinds = [r.kind for r in outcome["results"]]
        assert kinds == [httpload.OK] * IN_FLIGHT, {k: kinds.count(k) for k in set(kinds)}
        assert outcome["refused_while_draining"], server.logs()[-3000:]
        # Connections either got a full response or were refused: none reset or cut off.
        load = outcome["load"]
        assert set(load.counts) <= {httpload.OK, httpload.REFUSED}, dict(load.counts)
        assert load.counts[httpload.OK] > 0
        assert returncode == 0, server.logs()[-3000:]
        assert exited_after < GRACEFUL_TIMEOUT
        assert connect_refused(port)
