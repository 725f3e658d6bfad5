"""A fake payment provider speaking (a useful subset of) YooKassa's payments API v3.

A real HTTP/1.1 server on 127.0.0.1 for tests and benchmarks (an asyncio protocol with the
httptools parser on uvloop: in benchmarks it shares the 2 cores with the server under test, so
it is kept far cheaper per call than a framework or even a bare Uvicorn app would be):

    POST /v3/payments          create a payment; Basic auth, Idempotence-Key required; the same
                               key answers with the payment already created (never a second one)
    GET  /v3/payments/{id}     the payment's current state

Failure modes (`mode`): "ok"; "slow" (creates the payment, then answers only after
`slow_seconds`, like a provider that is overloaded); "error" (HTTP 500); "malformed" (200 with
a truncated JSON body); "down" (the listening socket is closed: connections are refused).
`latency_ms` delays every API answer. Every request is counted per Idempotence-Key.

Control (not delayed, not affected by the mode), for benchmarks running it as a process:
    GET  /_fake/state                      mode, latency, payments and request counts
    POST /_fake/config                     {"mode": ..., "latency_ms": ...} ("down" only in-process)
    POST /_fake/payments/{id}/succeed      the customer paid
    POST /_fake/payments/{id}/cancel       the customer gave up

In-process:  `with FakeProvider(latency_ms=100) as fake: ... fake.url ...` (runs on a thread).
Standalone:  `python -m tests.support.fake_provider --latency-ms 100 --port 8090`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import socket
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import httptools

MODES = ("ok", "slow", "error", "malformed", "down")


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return None
    return uvloop.new_event_loop


class FakeProvider:
    """The provider's state and its server thread; attributes may be changed while it runs."""

    def __init__(
        self,
        *,
        port: int = 0,
        latency_ms: float = 0,
        mode: str = "ok",
        slow_seconds: float = 5.0,
        shop_id: str = "test-shop",
        secret_key: str = "test-secret",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.host = "127.0.0.1"
        self.port = port
        self.latency_ms = latency_ms
        self.mode = "ok" if mode == "down" else mode
        self.slow_seconds = slow_seconds
        self.credentials = f"Basic {base64.b64encode(f'{shop_id}:{secret_key}'.encode()).decode()}"
        self.requests_by_key: Counter[str] = Counter()
        self.payments: dict[str, dict[str, Any]] = {}
        self.payment_by_key: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[_Connection] = set()
        self._down = mode == "down"

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeProvider:
        """Listen (on the same port as before when restarted) and serve on a daemon thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Answers go out in one write; TCP_NODELAY anyway (accepted sockets inherit it from the
        # listener): Nagle + delayed ACK would add ~40 ms to an answer written in two parts.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop() if (factory := _loop_factory()) is None else factory()
        started = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            try:
                self._server = await loop.create_server(
                    lambda: _Connection(self), sock=sock, backlog=2048
                )
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                raise
            finally:
                started.set()
            await self._server.serve_forever()

        def run() -> None:
            asyncio.set_event_loop(loop)
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(serve())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        if not started.wait(10) or failure:
            raise RuntimeError(f"fake provider did not start: {failure}")
        self._down = False
        return self

    def stop(self) -> None:
        """Close the listener and every connection (pooled clients see them die), then exit."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and not loop.is_closed():

            def close_all() -> None:
                if self._server is not None:
                    self._server.close()
                for conn in list(self._connections):
                    conn.close()
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(close_all)
            thread.join(10)
        self._server = self._thread = self._loop = None
        self._connections.clear()

    def set_mode(self, mode: str) -> None:
        """Switch failure mode; "down" closes the listening socket, leaving it restarts it."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode == "down":
            self.stop()
            self._down = True
            return
        self.mode = mode
        if self._down or self._server is None:
            self.start()

    def __enter__(self) -> FakeProvider:
        return self if self._down else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests look at / do -----------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.requests_by_key.clear()
            self.payments.clear()
            self.payment_by_key.clear()

    def payments_for_key(self, key: str) -> int:
        return 1 if key in self.payment_by_key else 0

    def settle(self, payment_id: str, status: str) -> dict[str, Any]:
        """Set a payment's final status, as the customer paying (or giving up) would."""
        payment = self.payments[payment_id]
        payment["status"] = status
        payment["paid"] = status == "succeeded"
        return payment

    # -- the API ---------------------------------------------------------------------------
    def _create(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        amount = body.get("amount")
        if not isinstance(amount, dict) or "value" not in amount or "currency" not in amount:
            return 400, {"type": "error", "code": "invalid_request", "parameter": "amount"}
        with self._lock:
            existing = self.payment_by_key.get(key)
            if existing is not None:
                return 200, self.payments[existing]
            payment_id = str(uuid.uuid4())
            payment = {
                "id": payment_id,
                "status": "pending",
                "paid": False,
                "amount": {"value": str(amount["value"]), "currency": str(amount["currency"])},
                "confirmation": {
                    "type": "redirect",
                    "return_url": (body.get("confirmation") or {}).get("return_url", ""),
                    "confirmation_url": f"{self.url}/checkout/{payment_id}",
                },
                "created_at": datetime.now(UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "description": body.get("description", ""),
                "metadata": body.get("metadata") or {},
                "recipient": {"account_id": "test-shop", "gateway_id": "fake"},
                "refundable": False,
                "test": True,
            }
            self.payments[payment_id] = payment
            self.payment_by_key[key] = payment_id
        return 200, payment

    def _api(
        self, method: str, path: str, headers: dict[bytes, bytes], body: bytes
    ) -> tuple[int, Any]:
        if headers.get(b"authorization", b"").decode() != self.credentials:
            return 401, {"type": "error", "code": "invalid_credentials"}
        if method == "POST" and path == "/v3/payments":
            key = headers.get(b"idempotence-key", b"").decode()
            if not key:
                return 400, {
                    "type": "error",
                    "code": "invalid_request",
                    "parameter": "Idempotence-Key",
                }
            with self._lock:
                self.requests_by_key[key] += 1
            try:
                data = json.loads(body)
            except ValueError:
                return 400, {
                    "type": "error",
                    "code": "invalid_request",
                    "description": "body is not JSON",
                }
            if self.mode == "error":
                return 500, {"type": "error", "code": "internal_server_error"}
            status, payment = self._create(key, data if isinstance(data, dict) else {})
        elif method == "GET" and path.startswith("/v3/payments/"):
            if self.mode == "error":
                return 500, {"type": "error", "code": "internal_server_error"}
            payment = self.payments.get(path.rsplit("/", 1)[1])
            status = 200 if payment else 404
            payment = payment or {"type": "error", "code": "not_found"}
        else:
            return 404, {"type": "error", "code": "not_found"}
        if self.mode == "malformed" and status == 200:
            return 200, json.dumps(payment)[: len(json.dumps(payment)) // 2]
        return status, payment

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "GET" and path == "/_fake/state":
            with self._lock:
                return 200, {
                    "mode": self.mode,
                    "latency_ms": self.latency_ms,
                    "payments": len(self.payments),
                    "requests": sum(self.requests_by_key.values()),
                    "requests_by_key": dict(self.requests_by_key),
                }
        if method == "POST" and path == "/_fake/config":
            data = json.loads(body or b"{}")
            if data.get("mode") not in (None, *MODES[:-1]):
                return 400, {"error": f"mode must be one of {MODES[:-1]} over HTTP"}
            self.mode = data.get("mode", self.mode)
            self.latency_ms = float(data.get("latency_ms", self.latency_ms))
            return 200, {"mode": self.mode, "latency_ms": self.latency_ms}
        parts = path.split("/")  # ["", "_fake", "payments", id, action]
        if (
            method == "POST"
            and len(parts) == 5
            and parts[2] == "payments"
            and parts[4] in ("succeed", "cancel")
        ):
            if parts[3] not in self.payments:
                return 404, {"error": "no such payment"}
            return 200, self.settle(parts[3], "succeeded" if parts[4] == "succeed" else "canceled")
        return 404, {"error": "no such control endpoint"}

    def answer(
        self, method: str, path: str, headers: dict[bytes, bytes], body: bytes
    ) -> tuple[int, bytes, float]:
        """(status, JSON body, seconds to hold the answer back) for one request, computed when
        the latency has passed; "slow" holds back an answer whose payment it already made."""
        if path.startswith("/_fake/"):
            status, payload = self._control(method, path, body)
            hold = 0.0
        else:
            status, payload = self._api(method, path, headers, body)
            hold = self.slow_seconds if self.mode == "slow" else 0.0
        raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        return status, raw, hold


Request = tuple[str, str, dict[bytes, bytes], bytes]  # method, path, headers, body
_PHRASES = {s.value: s.phrase for s in HTTPStatus}


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: httptools parses, FakeProvider.handle answers, in order."""

    def __init__(self, fake: FakeProvider) -> None:
        self._fake = fake
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._pending: list[list[Any]] = []  # [answer or None, keep-alive] in request order
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._fake._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fake._connections.discard(self)
        self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(400, b'{"error": "malformed HTTP request"}', keep_alive=False)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode()
        path = self._url.partition(b"?")[0].decode()
        request = (method, path, self._headers, b"".join(self._body))
        slot: list[Any] = [None, self._parser.should_keep_alive()]  # [answer, keep-alive]
        self._pending.append(slot)
        # Timers, not a task per request: the fake must stay cheap next to the server under test.
        delay = 0.0 if path.startswith("/_fake/") else self._fake.latency_ms / 1000
        if delay:
            asyncio.get_running_loop().call_later(delay, self._compute, slot, request)
        else:
            self._compute(slot, request)

    def _compute(self, slot: list[Any], request: Request) -> None:
        status, body, hold = self._fake.answer(*request)
        if hold:
            asyncio.get_running_loop().call_later(hold, self._ready, slot, status, body)
        else:
            self._ready(slot, status, body)

    def _ready(self, slot: list[Any], status: int, body: bytes) -> None:
        slot[0] = (status, body)
        while self._pending and self._pending[0][0] is not None:  # answers in request order
            (status, body), keep_alive = self._pending.pop(0)
            self._write(status, body, keep_alive)

    def _write(self, status: int, body: bytes, keep_alive: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        head = (
            f"HTTP/1.1 {status} {_PHRASES[status]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + ("" if keep_alive else "Connection: close\r\n")
            + "\r\n"
        )
        self._transport.write(head.encode() + body)
        if not keep_alive:
            self._transport.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Fake YooKassa-style payment provider on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port (printed)")
    parser.add_argument("--latency-ms", type=float, default=0, help="delay of every API answer")
    parser.add_argument("--mode", choices=MODES[:-1], default="ok")
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--shop-id", default="test-shop")
    parser.add_argument("--secret-key", default="test-secret")
    args = parser.parse_args(argv)
    fake = FakeProvider(
        port=args.port,
        latency_ms=args.latency_ms,
        mode=args.mode,
        slow_seconds=args.slow_seconds,
        shop_id=args.shop_id,
        secret_key=args.secret_key,
    ).start()
    print(
        f"fake provider listening on {fake.url} (latency {args.latency_ms:g} ms, mode {args.mode})",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
