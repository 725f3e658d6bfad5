"""A small raw-socket HTTP/1.1 load client that classifies every failure precisely.

httpx and friends retry or fold errors together; shutdown tests must tell apart a
refused connection (fine after a signal), a reset or an empty close after the
request was sent (a lost request), and a response cut off half-way (half-served).
Each request uses a fresh TCP connection, as the recycling target specifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

OK = "ok"
REFUSED = "refused"  # connect() refused: nothing was sent
RESET = "reset"  # connection reset after the request was sent, no response byte
EMPTY = "closed-without-response"  # clean close after the request, no response byte
PARTIAL = "half-served"  # some response bytes, then the connection ended early
TIMEOUT = "timeout"
CONNECT_ERROR = "connect-error"
LOST = (RESET, EMPTY, TIMEOUT)  # the request may have been lost
FAILURES = (RESET, EMPTY, PARTIAL, TIMEOUT, CONNECT_ERROR)


@dataclass
class Result:
    """Outcome of one request: a kind above (or ``status-NNN``) and timings."""

    kind: str
    status: int | None = None
    started: float = 0.0
    elapsed: float = 0.0
    body: bytes = b""


def _parse(raw: bytes) -> tuple[int | None, bool, bytes]:
    """Return (status, complete, body) for a response read until EOF."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None, False, b""
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, False, b""
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        return status, len(body) >= int(headers[b"content-length"]), body
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        return status, body.endswith(b"0\r\n\r\n"), body
    return status, True, body


async def request(
    host: str, port: int, path: str, *, method: str = "GET", body: bytes = b"",
    headers: dict[str, str] | None = None, timeout: float = 30.0,
) -> Result:
    """One request on a fresh connection (``Connection: close``), classified."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except ConnectionRefusedError:
        return Result(REFUSED, started=started, elapsed=time.monotonic() - started)
    except (OSError, TimeoutError):
        return Result(CONNECT_ERROR, started=started, elapsed=time.monotonic() - started)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    if body:
        extra += f"Content-Length: {len(body)}\r\n"
    raw = b""
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n{extra}\r\n"
            .encode() + body
        )
        await writer.drain()
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                raw += chunk
    except (ConnectionResetError, BrokenPipeError):
        kind = PARTIAL if raw else RESET
        return Result(kind, started=started, elapsed=time.monotonic() - started)
    except TimeoutError:
        return Result(TIMEOUT, started=started, elapsed=time.monotonic() - started)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    elapsed = time.monotonic() - started
    if not raw:
        return Result(EMPTY, started=started, elapsed=elapsed)
    status, complete, content = _parse(raw)
    if status is None or not complete:
        return Result(PARTIAL, status, started, elapsed)
    kind = OK if 200 <= status < 300 else f"status-{status}"
    return Result(kind, status, started, elapsed, content)


@dataclass
class LoadReport:
    """Counts per outcome kind over a closed-loop run."""

    counts: Counter = field(default_factory=Counter)
    duration: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def failures(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind != OK)

    def failure_rate(self) -> float:
        return self.failures / self.total if self.total else 0.0


async def closed_loop(
    host: str, port: int, path: str, *, concurrency: int, duration: float,
    progress: Callable[[LoadReport, float], None] | None = None, timeout: float = 30.0,
) -> LoadReport:
    """``concurrency`` clients each sending requests back to back for ``duration`` s."""
    report = LoadReport()
    deadline = time.monotonic() + duration
    start = time.monotonic()

    async def client() -> None:
        while time.monotonic() < deadline:
            result = await request(host, port, path, timeout=timeout)
            report.counts[result.kind] += 1
            report.latencies.append(result.elapsed)

    async def reporter() -> None:
        while True:
            await asyncio.sleep(1.0)
            if progress is not None:
                progress(report, time.monotonic() - start)

    ticker = asyncio.ensure_future(reporter())
    try:
        await asyncio.gather(*(client() for _ in range(concurrency)))
    finally:
        ticker.cancel()
    report.duration = time.monotonic() - start
    return report
