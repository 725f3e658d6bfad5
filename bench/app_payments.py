#!/usr/bin/env python
"""Payment path POST /api/orders with a 100 ms payment provider: Uvicorn vs the sync worker.

SPEC section 7 target: Gunicorn+UvicornWorker >= 10x the throughput of Gunicorn's sync
worker at the same worker count, with p99 latency <= 2x the provider latency at that load.

Each request is a real order: JSON parsing and validation, a drink SELECT (fresh price),
POST /v3/payments with its Idempotence-Key to the fake provider (tests/support/fake_provider.py,
its own process, answering after --latency-ms), the order INSERT with the payment's outcome,
a 201 JSON answer.

Fairness: both servers run the same Django project, settings, database and provider, with
the same worker count and the same wrk load. The sync worker serves the WSGI entry
coffee.wsgi, where Django runs the async views through its async_to_sync adapter (one
short-lived event loop per request, so one provider connection per request): that costs
CPU, but a sync worker is bounded by one request at a time per process in any case
(workers / latency = 5 / 0.1 s = 50 requests/s), which is what the comparison shows.

Database: a throwaway PostgreSQL (tests/support/postgres.py, the production database) unless
--db sqlite; DATABASE_URL gets CONN_MAX_AGE=60 and prepare_threshold=0 (deployment settings,
the same for every server). Load: wrk with --connections (default 60, the same for every
server; p99 is measured at that load). Rounds alternate the servers; the figure per server is
the median over rounds. The provider's request count is printed next to the orders answered.

    .venv/bin/python bench/app_payments.py [--rounds 3] [--seconds 8] [--connections 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from app_common import (
    REPO,
    Load,
    app_server,
    group_cpu_seconds,
    load_average,
    log,
    machine_busy_seconds,
    pids_cpu_seconds,
    set_priority,
    summary,
    wrk,
)

from tests.support.postgres import PostgresUnavailable, postgres_server
from tests.support.servers import APP_DIR, migrate, server_env

KINDS = ["uvicorn", "sync", "asgi"]
# A round counts as quiet when everything but the server, the provider and PostgreSQL (wrk
# and the machine's other tenants) kept less than this many cores busy.
QUIET_CORES = 0.3
DRAIN_SECONDS = 2.0
ORDER_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"drink": "latte", "quantity": 2}'
wrk.headers["Content-Type"] = "application/json"
"""


@contextmanager
def fake_provider(latency_ms: float) -> Iterator[tuple[str, int]]:
    """The fake provider as its own process: (URL, pid). Test infrastructure, not the system
    under test, but it shares the cores: its CPU per order is printed next to the server's."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_provider", "--port", "0",
         "--latency-ms", str(latency_ms)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "listening on " not in line:
            raise RuntimeError(f"fake provider did not start: {line!r}")
        yield line.split("listening on ")[1].split()[0], proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def provider_requests(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_fake/state", timeout=10) as response:
        return int(json.load(response)["requests"])


@contextmanager
def database(kind: str) -> Iterator[tuple[str | None, int | None]]:
    """(DATABASE_URL, PostgreSQL's postmaster pid) or (None, None) for SQLite."""
    if kind == "sqlite":
        yield None, None
        return
    try:
        with postgres_server() as pg:
            url = pg.create_database("coffee_bench")
            postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
            yield url, postmaster
    except PostgresUnavailable as exc:
        sys.exit(f"--db postgres: {exc} (or use --db sqlite)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=60,
                        help="wrk connections, the same for every server (p99 at this load)")
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--timeout", type=float, default=5.0, help="PAYMENT_PROVIDER_TIMEOUT")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--conn-max-age", type=int, default=60,
                        help="CONN_MAX_AGE in DATABASE_URL (postgres); 0: one per request")
    parser.add_argument("--prepare-threshold", default="0",
                        help="psycopg prepare_threshold in DATABASE_URL OPTIONS (postgres), e.g. 0"
                             " (prepare every statement); 'none': Django's default (never)")
    parser.add_argument("--servers", default=",".join(KINDS), help="comma-separated subset")
    parser.add_argument("--nice", type=int, default=0,
                        help="run servers and wrk at this nice value (e.g. -10 on a shared box)")
    args = parser.parse_args()
    set_priority(args.nice)  # inherited by every server, wrk, the provider, PostgreSQL
    kinds = [k for k in args.servers.split(",") if k]
    if set(kinds) - set(KINDS):
        parser.error(f"--servers: choose from {KINDS}")

    script = Path(tempfile.mkdtemp(prefix="coffee-bench-")) / "order.lua"
    script.write_text(ORDER_SCRIPT)
    results: dict[str, list[Load]] = {k: [] for k in kinds}
    quiet: dict[str, list[Load]] = {k: [] for k in kinds}  # rounds the neighbours left alone
    with ExitStack() as stack:
        log(f"starting the fake payment provider ({args.latency_ms:g} ms latency)")
        provider, provider_pid = stack.enter_context(fake_provider(args.latency_ms))
        log(f"provider at {provider}; database: {args.db}")
        database_url, postmaster = stack.enter_context(database(args.db))
        if database_url:
            options = [f"CONN_MAX_AGE={args.conn_max_age}"]
            if args.prepare_threshold != "none":
                options.append(f"prepare_threshold={int(args.prepare_threshold)}")
            database_url += "?" + "&".join(options)
        helpers = [provider_pid] + ([postmaster] if postmaster else [])
        env = server_env(
            database_url,
            PYTHONPATH=os.pathsep.join([str(REPO), str(APP_DIR), str(REPO / "bench")]),
            PAYMENT_PROVIDER_URL=provider,
            PAYMENT_SHOP_ID="test-shop",
            PAYMENT_SECRET_KEY="test-secret",
            PAYMENT_PROVIDER_TIMEOUT=str(args.timeout),
        )
        log(f"migrating {env['DATABASE_URL']}")
        migrate(env)
        servers = {}
        for kind in kinds:
            log(f"starting {kind} ({args.workers} workers)")
            servers[kind] = stack.enter_context(app_server(kind, env, args.workers, args.nice))
        log("warming up each server for 2 s")
        for server in servers.values():
            wrk(server.url("/api/orders"), connections=args.connections, seconds=2, script=script)
        before = provider_requests(provider)
        for rnd in range(args.rounds):
            order = kinds[rnd % len(kinds):] + kinds[: rnd % len(kinds)]
            for kind in order:
                # Let the previous round's queued requests drain first: a sync worker still
                # serves requests from connections wrk already closed (each with its provider
                # call), which would eat the first seconds of a back-to-back round.
                time.sleep(DRAIN_SECONDS)
                pgid = servers[kind].proc.pid  # the server's own process group
                cpu = group_cpu_seconds(pgid)
                side = [pids_cpu_seconds([pid]) for pid in helpers]
                busy = machine_busy_seconds()
                load = wrk(servers[kind].url("/api/orders"), connections=args.connections,
                           seconds=args.seconds, script=script)
                cpu = group_cpu_seconds(pgid) - cpu
                side = [pids_cpu_seconds([p]) - b for p, b in zip(helpers, side, strict=True)]
                busy = machine_busy_seconds() - busy
                load.cpu_ms = cpu * 1000 / load.requests if load.requests else None
                results[kind].append(load)
                log(f"round {rnd + 1}/{args.rounds} ({load_average()}) {kind:>7}: {load.line()}")
                per_order = [f"{x * 1000 / max(load.requests, 1):.2f}" for x in side]
                others = (busy - cpu - sum(side)) / args.seconds
                if others < QUIET_CORES:
                    quiet[kind].append(load)
                log(f"        per order: provider {per_order[0]} ms"
                    + (f", PostgreSQL {per_order[1]} ms" if len(per_order) > 1 else "")
                    + f" CPU; rest of the machine (wrk, neighbours) {others:.2f} cores busy")
        made = provider_requests(provider) - before

    print()
    print(f"POST /api/orders, provider latency {args.latency_ms:g} ms, {args.connections} "
          f"connections, {args.workers} workers, {args.rounds} x {args.seconds:g} s per server, "
          f"median of rounds, database {args.db} ({database_url or 'sqlite'})")
    final = {k: summary(v) for k, v in results.items()}
    completed = sum(x.requests for loads in results.values() for x in loads)
    print(f"provider saw {made} payment requests for {completed} orders answered")
    base = final.get("sync")
    for kind, load in final.items():
        ratio = f"  {load.rps / base.rps:6.2f}x sync" if base else ""
        print(f"  {kind:>7}: {load.line()}{ratio}")
    if base and "uvicorn" in final:
        ours = final["uvicorn"]
        ratio = ours.rps / base.rps
        bound = 2 * args.latency_ms
        print(f"target throughput >= 10x sync: {ratio:.1f}x  {'PASS' if ratio >= 10 else 'FAIL'}")
        print(f"target p99 <= {bound:g} ms at that load: {ours.p99_ms:.1f} ms  "
              f"{'PASS' if ours.p99_ms <= bound else 'FAIL'}")
        errors = sum(x.errors for x in results["uvicorn"])
        print(f"failed requests (uvicorn): {errors}")
    if all(quiet.get(k) for k in ("uvicorn", "sync")):
        ours, base = summary(quiet["uvicorn"]), summary(quiet["sync"])
        print(f"quiet rounds only (rest of the machine < {QUIET_CORES} cores busy; "
              f"{len(quiet['uvicorn'])} uvicorn, {len(quiet['sync'])} sync), median:")
        print(f"  uvicorn: {ours.line()}\n     sync: {base.line()}\n"
              f"  ratio {ours.rps / base.rps:.1f}x, p99 {ours.p99_ms:.1f} ms")


if __name__ == "__main__":
    main()
