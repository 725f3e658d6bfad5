#!/usr/bin/env python
"""Hot path GET /api/menu: runserver vs Gunicorn+Uvicorn vs sync vs native asgi worker.

SPEC section 7 target: Gunicorn+UvicornWorker at 5 workers (what the operator computes for
2 cores) >= 3x `manage.py runserver`, same machine, same run. Also measured: Gunicorn's
sync worker and its native `asgi` worker at the same worker count, and "stock" (the same
Uvicorn server running stock Django: its ASGIHandler and default middleware), which is
where this project started.

Method: every server runs at once on 127.0.0.1 (production settings, one migrated SQLite
file, X-Forwarded-Proto: https as behind the ingress); wrk drives each for --seconds per
round with --connections keep-alive connections; rounds alternate the server order so a
noisy neighbour hits all of them alike; the figure per server is the median over rounds.

--profile first measures the request path in-process (no sockets: the ASGI app called
directly, one request at a time), CPU time per request, stock Django vs ours, and prints
pyinstrument's view of stock Django's path: what the optimisation was based on.

    .venv/bin/python bench/app_menu.py [--rounds 3] [--seconds 5] [--connections 16] [--profile]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from contextlib import ExitStack

from app_common import (
    REPO,
    Load,
    app_server,
    load_average,
    log,
    set_priority,
    summary,
    wrk,
)

from tests.support.servers import APP_DIR, migrate, server_env

KINDS = ["runserver", "uvicorn", "sync", "asgi", "stock"]
HEADERS = {"X-Forwarded-Proto": "https"}


def inprocess(kind: str, count: int, show_profile: bool) -> None:
    """Child process: call the ASGI app `count` times directly; print CPU us per request."""
    import asyncio
    import time

    os.environ["DJANGO_SETTINGS_MODULE"] = (
        "bench.app_stock_settings" if kind == "stock" else "coffee_payment.settings"
    )
    if kind == "stock":
        from django.core.asgi import get_asgi_application

        app = get_asgi_application()
    else:
        from coffee_payment.asgi import application as app
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/api/menu", "raw_path": b"/api/menu", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"127.0.0.1"), (b"x-forwarded-proto", b"https")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }

    async def one() -> int:
        delivered = asyncio.Event()
        status = 0

        async def receive() -> dict:
            if not delivered.is_set():
                delivered.set()
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # no disconnect: Django cancels this listener
            return {}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope), receive, send)
        return status

    async def run() -> None:
        for _ in range(200):
            assert await one() == 200
        profiler = None
        if show_profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            await one()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{kind:>6}: {cpu / count * 1e6:6.0f} us CPU per request (all threads), "
              f"{count / wall:6.0f} requests/s one at a time", flush=True)
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False), flush=True)

    asyncio.run(run())


def profile(env: dict[str, str]) -> None:
    log("in-process profile of GET /api/menu (stock Django's ASGI path vs ours)")
    for kind, show in (("stock", True), ("ours", False), ("stock", False), ("ours", False)):
        subprocess.run(
            [sys.executable, __file__, "--inprocess", kind, "--count", "2000",
             *(["--show-profile"] if show else [])],
            cwd=APP_DIR, env=env, check=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--servers", default=",".join(KINDS), help="comma-separated subset")
    parser.add_argument("--nice", type=int, default=0,
                        help="run servers and wrk at this nice value (e.g. -10 on a shared box)")
    parser.add_argument("--profile", action="store_true", help="in-process profile first")
    parser.add_argument("--inprocess", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=2000, help=argparse.SUPPRESS)
    parser.add_argument("--show-profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inprocess:
        inprocess(args.inprocess, args.count, args.show_profile)
        return
    set_priority(args.nice)  # inherited by every server, wrk, the provider, PostgreSQL
    kinds = [k for k in args.servers.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"--servers: unknown {sorted(unknown)}; choose from {KINDS}")

    env = server_env(PYTHONPATH=os.pathsep.join([str(REPO), str(APP_DIR), str(REPO / "bench")]))
    log(f"database {env['DATABASE_URL']}: migrating")
    migrate(env)
    if args.profile:
        profile(env)

    results: dict[str, list[Load]] = {k: [] for k in kinds}
    with ExitStack() as stack:
        servers = {}
        for kind in kinds:
            workers = 1 if kind == "runserver" else args.workers
            log(f"starting {kind} ({'1 process' if kind == 'runserver' else f'{workers} workers'})")
            servers[kind] = stack.enter_context(app_server(kind, env, workers, args.nice))
        log("warming up each server for 1 s")
        for server in servers.values():
            wrk(server.url("/api/menu"), connections=args.connections, seconds=1, headers=HEADERS)
        for rnd in range(args.rounds):
            order = kinds[rnd % len(kinds):] + kinds[: rnd % len(kinds)]
            for kind in order:
                load = wrk(servers[kind].url("/api/menu"), connections=args.connections,
                           seconds=args.seconds, headers=HEADERS)
                results[kind].append(load)
                log(f"round {rnd + 1}/{args.rounds} ({load_average()}) {kind:>9}: {load.line()}")

    print()
    print(f"GET /api/menu, {args.connections} connections, {args.rounds} x {args.seconds:g} s "
          f"per server, median of rounds ({args.workers} workers for Gunicorn)")
    final = {k: summary(v) for k, v in results.items()}
    base = final.get("runserver")
    for kind, load in final.items():
        ratio = f"  {load.rps / base.rps:5.2f}x runserver" if base else ""
        print(f"  {kind:>9}: {load.line()}{ratio}")
    if base and "uvicorn" in final:
        ratio = final["uvicorn"].rps / base.rps
        verdict = "PASS" if ratio >= 3 else "FAIL"
        print(f"target Gunicorn+Uvicorn >= 3x runserver: {ratio:.2f}x  {verdict}")
    if "stock" in final and "uvicorn" in final:
        print(f"ours vs stock Django on the same server: "
              f"{final['uvicorn'].rps / final['stock'].rps:.2f}x")


if __name__ == "__main__":
    main()
