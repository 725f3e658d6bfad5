#!/usr/bin/env python
"""Benchmark: lossless worker recycling and graceful SIGTERM/SIGINT for the app server.

Real Gunicorn processes with app/gunicorn.conf.py on 127.0.0.1, real sockets, a
raw HTTP/1.1 client (tests.support.httpload) that tells refused connections apart
from lost or half-served requests.

1. Recycling (SPEC section 7): GUNICORN_WORKERS=2, max-requests 50 + jitter 10,
   32 concurrent clients on fresh connections for 8 s, against
   - stock:  ``uvicorn_worker.UvicornWorker`` (``-k`` override, everything else ours),
   - ours:   ``coffee_payment.workers.UvicornWorker`` (the config's default),
   - asgi:   Gunicorn's native ``asgi`` worker (reference that loses none).
   Target: ours 0 failed requests.
2. Signals: 128 slow requests (2 s) in flight plus 32 clients hammering /health on
   fresh connections; at 1 s the master gets SIGTERM (then, in a second run, SIGINT).
   Target: every in-flight request 200; every connection that got through connect()
   fully served; later connections refused; master exits 0 within the graceful
   timeout.

Usage: .venv/bin/python bench/app_shutdown.py [--duration 8] [--inflight 128] [--skip-recycle]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import httpload
from tests.support.servers import (
    TEST_SETTINGS,
    gunicorn_server,
    migrate,
    server_env,
)

WORKERS = {
    "stock": "uvicorn_worker.UvicornWorker",
    "ours": None,  # gunicorn.conf.py's worker_class
    "asgi": "asgi",
}


def say(message: str) -> None:
    print(message, flush=True)


def progress(label: str):
    def show(report: httpload.LoadReport, elapsed: float) -> None:
        say(
            f"   {label}: {elapsed:4.1f}s  {report.total:6d} requests  "
            f"{report.failures:4d} failed  ({report.total / max(elapsed, 1e-9):6.0f} req/s)"
        )

    return show


@dataclass
class RecycleResult:
    worker: str
    report: httpload.LoadReport
    recycles: int
    clients: str = "fresh-connection"


async def keepalive_loop(
    base_url: str, path: str, concurrency: int, duration: float, label: str,
) -> httpload.LoadReport:
    """Like httpload.closed_loop, but each client keeps one pooled keep-alive connection."""
    import httpx

    report = httpload.LoadReport()
    start = asyncio.get_running_loop().time()
    deadline = start + duration

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30,
                                     limits=httpx.Limits(max_connections=1)) as http:
            while asyncio.get_running_loop().time() < deadline:
                try:
                    response = await http.get(path)
                except httpx.HTTPError as exc:
                    report.counts[type(exc).__name__] += 1
                    continue
                kind = httpload.OK if response.status_code == 200 else (
                    f"status-{response.status_code}")
                report.counts[kind] += 1

    async def ticker() -> None:
        show = progress(label)
        while True:
            await asyncio.sleep(1.0)
            show(report, asyncio.get_running_loop().time() - start)

    tick = asyncio.ensure_future(ticker())
    try:
        await asyncio.gather(*(client() for _ in range(concurrency)))
    finally:
        tick.cancel()
    report.duration = asyncio.get_running_loop().time() - start
    return report


def run_recycle(name: str, args: argparse.Namespace, keepalive: bool = False) -> RecycleResult:
    env = server_env(
        GUNICORN_WORKERS=str(args.workers),
        GUNICORN_MAX_REQUESTS=str(args.max_requests),
        GUNICORN_MAX_REQUESTS_JITTER=str(args.jitter),
    )
    migrate(env)
    extra = ["-k", WORKERS[name]] if WORKERS[name] else []
    clients = "keep-alive" if keepalive else "fresh-connection"
    say(f"-- recycling, {clients} clients, worker={name} "
        f"({WORKERS[name] or 'coffee_payment.workers.UvicornWorker'})")
    with gunicorn_server(env, extra_args=extra) as server:
        if keepalive:
            load = keepalive_loop(server.base_url, args.path, args.concurrency, args.duration,
                                  name)
        else:
            load = httpload.closed_loop(
                "127.0.0.1", server.port, args.path, concurrency=args.concurrency,
                duration=args.duration, progress=progress(name),
            )
        report = asyncio.run(load)
        logs = server.stderr()
    # Every boot beyond the first generation replaced a recycled worker.
    recycles = len(re.findall(r"Booting worker with pid", logs)) - args.workers
    return RecycleResult(name, report, recycles, clients)


@dataclass
class SignalResult:
    signame: str
    worker: str
    inflight: Counter = field(default_factory=Counter)
    before: Counter = field(default_factory=Counter)  # load requests started before the signal
    after: Counter = field(default_factory=Counter)  # started after the signal
    exit_code: int | None = None
    exit_seconds: float = 0.0
    backlog_taken: int = 0  # connections our workers accepted from the backlog at shutdown
    graceful_timeout: int = 0


async def _signal_scenario(
    port: int, master: int, sig: signal.Signals, args: argparse.Namespace, result: SignalResult,
) -> float:
    slow_path = f"/test/slow?seconds={args.slow}"
    inflight = [
        asyncio.ensure_future(httpload.request("127.0.0.1", port, slow_path, timeout=60))
        for _ in range(args.inflight)
    ]
    stop_load = asyncio.Event()
    sent_at: list[float] = []

    async def hammer() -> None:
        while not stop_load.is_set():
            res = await httpload.request("127.0.0.1", port, "/health", timeout=30)
            bucket = result.before if sent_at and res.started < sent_at[0] else result.after
            if not sent_at:
                bucket = result.before
            bucket[res.kind] += 1
            if res.kind == httpload.REFUSED:
                await asyncio.sleep(0.01)

    load = [asyncio.ensure_future(hammer()) for _ in range(args.concurrency)]
    await asyncio.sleep(args.slow / 2)
    say(f"   {args.inflight} slow requests in flight, {args.concurrency} clients on /health; "
        f"sending {sig.name}")
    sent_at.append(time.monotonic())
    os.kill(master, sig)
    done = await asyncio.gather(*inflight)
    say(f"   in-flight requests finished {time.monotonic() - sent_at[0]:.2f}s after the signal")
    await asyncio.sleep(0.5)  # keep knocking: the listener must be gone by now
    stop_load.set()
    await asyncio.gather(*load)
    for res in done:
        result.inflight[res.kind] += 1
    return sent_at[0]


def run_signal(sig: signal.Signals, worker: str, args: argparse.Namespace) -> SignalResult:
    env = server_env(
        GUNICORN_WORKERS=str(args.workers),
        GUNICORN_GRACEFUL_TIMEOUT=str(args.graceful_timeout),
        DJANGO_SETTINGS_MODULE=TEST_SETTINGS,
    )
    migrate(env)
    result = SignalResult(sig.name, worker, graceful_timeout=args.graceful_timeout)
    say(f"-- {sig.name} under load, worker={worker} (workers={args.workers}, graceful timeout "
        f"{args.graceful_timeout}s)")
    extra = ["-k", WORKERS[worker]] if WORKERS[worker] else []
    with gunicorn_server(env, extra_args=extra) as server:
        sent = asyncio.run(_signal_scenario(server.port, server.proc.pid, sig, args, result))
        try:
            server.proc.wait(timeout=args.graceful_timeout + 10)
        finally:
            result.exit_code = server.proc.returncode
            result.exit_seconds = time.monotonic() - sent
        result.backlog_taken = sum(
            int(n) for n in re.findall(r"Accepted (\d+) queued connection", server.stderr())
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="recycling load, seconds")
    parser.add_argument("--concurrency", type=int, default=32, help="clients on fresh connections")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=50)
    parser.add_argument("--jitter", type=int, default=10)
    parser.add_argument("--path", default="/health")
    parser.add_argument("--inflight", type=int, default=128, help="slow requests at the signal")
    parser.add_argument("--slow", type=float, default=2.0, help="slow request duration, s")
    parser.add_argument("--graceful-timeout", type=int, default=30)
    parser.add_argument("--workers-to-compare", default="stock,ours,asgi")
    parser.add_argument("--signal-workers", default="ours,stock",
                        help="workers for the signal runs (only 'ours' must pass)")
    parser.add_argument("--skip-recycle", action="store_true")
    parser.add_argument("--skip-signals", action="store_true")
    parser.add_argument("--skip-keepalive", action="store_true")
    args = parser.parse_args()

    ok = True
    recycles: list[RecycleResult] = []
    if not args.skip_recycle:
        say(f"== 1. max-requests recycling: {args.workers} workers, max-requests "
            f"{args.max_requests} + jitter {args.jitter}, {args.concurrency} clients on fresh "
            f"connections, {args.duration:g}s each")
        for name in args.workers_to_compare.split(","):
            recycles.append(run_recycle(name.strip(), args))
        if not args.skip_keepalive:
            say("== 1b. the same with keep-alive clients (one pooled connection each, httpx)")
            for name in args.workers_to_compare.split(","):
                recycles.append(run_recycle(name.strip(), args, keepalive=True))
    signals: list[SignalResult] = []
    if not args.skip_signals:
        say("== 2. graceful shutdown under load")
        for sig in (signal.SIGTERM, signal.SIGINT):
            for worker in args.signal_workers.split(","):
                signals.append(run_signal(sig, worker.strip(), args))

    say("\n== results")
    for r in recycles:
        rep = r.report
        lost = {k: v for k, v in rep.counts.items() if k != httpload.OK}
        say(f"recycling  {r.clients:16s} {r.worker:6s} {rep.total:6d} requests  "
            f"{rep.failures:4d} failed "
            f"({100 * rep.failure_rate():.2f}%)  {rep.total / rep.duration:6.0f} req/s  "
            f"{r.recycles:3d} worker recycles  {lost or ''}")
        if r.worker == "ours" and rep.failures:
            ok = False
    for s in signals:
        bad_after = {k: v for k, v in s.after.items() if k not in (httpload.OK, httpload.REFUSED)}
        bad_before = {k: v for k, v in s.before.items() if k != httpload.OK}
        say(f"{s.signame:8s} {s.worker:6s} in-flight {dict(s.inflight)}  load before signal "
            f"{dict(s.before)}  after signal {dict(s.after)}  master exit {s.exit_code} "
            f"after {s.exit_seconds:.2f}s (graceful timeout {s.graceful_timeout}s)"
            + (f", {s.backlog_taken} queued connection(s) taken from the backlog"
               if s.worker == "ours" else ""))
        inflight_ok = s.inflight.get(httpload.OK, 0) == sum(s.inflight.values())
        if s.worker == "ours" and (
            not inflight_ok or bad_after or bad_before or s.exit_code != 0
        ):
            ok = False
    say("PASS: targets met" if ok else "FAIL: a target was missed (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
