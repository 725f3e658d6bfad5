"""The draining rules of coffee_payment.workers, each shown on a real server.

Stock uvicorn closes both kinds of connection below the moment shutdown starts, so
a request the client sends a little later is lost; ours serves it with
``Connection: close``.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.servers import (
    TEST_SETTINGS,
    RunningServer,
    gunicorn_server,
    migrated_sqlite_url,
    server_env,
)

pytestmark = pytest.mark.slow


def send_request(sock: socket.socket, path: str) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with Content-Length, read from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def one_worker() -> Iterator[RunningServer]:
    env = server_env(migrated_sqlite_url(), GUNICORN_WORKERS="1",
                     GUNICORN_GRACEFUL_TIMEOUT="10", DJANGO_SETTINGS_MODULE=TEST_SETTINGS)
    with gunicorn_server(env) as server:
        yield server


def keep_draining(server: RunningServer) -> threading.Thread:
    """A 1.5 s request in flight keeps the worker draining after the signal."""
    def slow() -> None:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            send_request(sock, "/test/slow?seconds=1.5")
            read_response(sock)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)
    return thread


def test_kept_alive_connection_is_served_after_shutdown_starts(one_worker: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", one_worker.port)) as sock:
        send_request(sock, "/health")
        status, headers, _ = read_response(sock)
        assert status == 200 and headers.get("connection") != "close"  # kept alive
        slow = keep_draining(one_worker)
        one_worker.proc.send_signal(signal.SIGTERM)
        time.sleep(0.4)  # shutdown has started; the connection sat idle meanwhile
        send_request(sock, "/health")
        status, headers, _ = read_response(sock)
        assert status == 200
        assert headers["connection"] == "close"
        assert sock.recv(1) == b""  # then closed by the server
    slow.join()
    assert one_worker.proc.wait(timeout=10) == 0


def test_connection_opened_before_the_signal_is_served(one_worker: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", one_worker.port)) as sock:
        slow = keep_draining(one_worker)  # the worker has accepted `sock` by now
        one_worker.proc.send_signal(signal.SIGTERM)
        time.sleep(0.4)
        send_request(sock, "/health")
        status, headers, _ = read_response(sock)
        assert status == 200
        assert headers["connection"] == "close"
    slow.join()
    assert one_worker.proc.wait(timeout=10) == 0


def test_quiet_connection_is_closed_after_the_keep_alive_timeout(
    one_worker: RunningServer,
) -> None:
    """Draining waits for a silent client no longer than the keep-alive timeout (2 s)."""
    with socket.create_connection(("127.0.0.1", one_worker.port)) as sock:
        time.sleep(0.2)
        signalled = time.monotonic()
        one_worker.proc.send_signal(signal.SIGTERM)
        sock.settimeout(10)
        assert sock.recv(1) == b""
        closed_after = time.monotonic() - signalled
        assert one_worker.proc.wait(timeout=10) == 0
    assert 1.5 < closed_after < 6.0


def test_drain_is_bounded_by_the_graceful_timeout() -> None:
    """A request longer than GUNICORN_GRACEFUL_TIMEOUT is cut off; the master exits 0 in time."""
    env = server_env(migrated_sqlite_url(), GUNICORN_WORKERS="1",
                     GUNICORN_GRACEFUL_TIMEOUT="2", DJANGO_SETTINGS_MODULE=TEST_SETTINGS)
    with gunicorn_server(env) as server, socket.create_connection(
        ("127.0.0.1", server.port)
    ) as sock:
        send_request(sock, "/test/slow?seconds=30")
        time.sleep(0.3)
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=10) == 0
        assert time.monotonic() - signalled < 3.5
        sock.settimeout(5)
        assert sock.recv(1) == b""  # the over-long request got no response
        assert "Graceful timeout (1.0s) exceeded: cancelling 1 request(s)" in server.stderr()
