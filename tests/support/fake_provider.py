"""A fake payment provider speaking (a useful subset of) YooKassa's payments API v3.

A real HTTP server (Uvicorn on 127.0.0.1) for tests and benchmarks:

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
import json
import socket
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import uvicorn

MODES = ("ok", "slow", "error", "malformed", "down")
Scope = dict[str, Any]


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
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._down = mode == "down"

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeProvider:
        """Listen (on the same port as before when restarted) and serve on a daemon thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Answers go out as two writes (head, body): without TCP_NODELAY (which accepted
        # sockets inherit from the listener) Nagle + delayed ACK add ~40 ms to each.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            interface="asgi3",
            proxy_headers=False,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            backlog=2048,
        )
        server = uvicorn.Server(config)
        started = threading.Event()

        async def serve() -> None:
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            started.set()
            await task

        def run() -> None:
            # uvloop (a dependency of uvicorn[standard]) when present: the fake shares the CPU
            # with the server under test in benchmarks, so it should cost as little as it can.
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(serve())

        self._server = server
        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fake provider did not start within 10 s")
        self._down = False
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None

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

    async def _api(
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
        if self.mode == "slow":
            await asyncio.sleep(self.slow_seconds)
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

    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        """Raw ASGI: no framework, so the fake costs little CPU next to the server under test."""
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        if path.startswith("/_fake/"):
            status, payload = self._control(method, path, body)
        else:
            if self.latency_ms:
                await asyncio.sleep(self.latency_ms / 1000)
            status, payload = await self._api(method, path, dict(scope["headers"]), body)
        raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": raw})


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
