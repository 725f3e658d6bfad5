#!/usr/bin/env python
"""1,000 CoffeeServers at once: time to all reconciled, peak RSS, writes (SPEC 7).

Method:
  - client-side LIST+WATCH of the namespace's Deployments and CoffeeServers, started
    before the first create;
  - all N CRs are POSTed concurrently (64 requests in flight) at t0;
  - "Deployments present": the watch has delivered ADDED for all N Deployments;
  - "statuses current": every CR's watch copy has status.observedGeneration ==
    metadata.generation (written by the operator after it applied the children);
  - peak RSS: VmHWM of the operator process from /proc at the end;
  - writes: apiserver_request_total (the API server's own counters) by verb and resource,
    from before the creates until the operator has gone quiet (writes per child object);
  - idle: the same counters over --idle seconds (default 60) after everything settled.

    .venv/bin/python bench/operator_scale.py [--count 1000] [--idle 60] [--replicas N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from operator_common import (
    Kube,
    OperatorProcess,
    coffee_server,
    common_arguments,
    component_cpu,
    control_plane,
    delta,
    format_cpu,
    format_writes,
    log,
    operator_process,
    operators,
)

CONCURRENCY = 64


async def wait_quiet(kube: Kube, quiet_for: float = 5.0, limit: float = 120.0) -> None:
    """Wait until the operator's resources see no writes for ``quiet_for`` seconds."""
    deadline = time.monotonic() + limit
    last = await kube.write_counts()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        now = await kube.write_counts()
        if delta(now, last):
            quiet_since = time.monotonic()
            last = now
        elif time.monotonic() - quiet_since >= quiet_for:
            return


async def run(kube: Kube, proc: OperatorProcess, args: argparse.Namespace,
              which: str) -> dict[str, float]:
    namespace = f"bench-scale-{uuid.uuid4().hex[:6]}"
    await kube.create_namespace(namespace)
    count = args.count
    deployments: set[str] = set()
    current: set[str] = set()
    ready: set[str] = set()
    t_deployments: float | None = None
    t_statuses: float | None = None
    t0 = 0.0

    def on_deployment(kind: str, obj: dict[str, Any]) -> None:
        nonlocal t_deployments
        if kind == "ADDED":
            deployments.add(obj["metadata"]["name"])
            if len(deployments) == count and t_deployments is None:
                t_deployments = time.perf_counter() - t0

    def on_coffee(kind: str, obj: dict[str, Any]) -> None:
        nonlocal t_statuses
        meta, status = obj["metadata"], obj.get("status") or {}
        if status.get("observedGeneration") == meta.get("generation"):
            current.add(meta["name"])
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in status.get("conditions") or []):
                ready.add(meta["name"])
            if len(current) == count and t_statuses is None:
                t_statuses = time.perf_counter() - t0

    started = [asyncio.Event(), asyncio.Event()]
    watchers = [
        asyncio.create_task(kube.watch(f"/apis/apps/v1/namespaces/{namespace}/deployments",
                                       on_deployment, started[0])),
        asyncio.create_task(kube.watch(
            f"/apis/coffee.example.com/v1alpha1/namespaces/{namespace}/coffeeservers",
            on_coffee, started[1])),
    ]
    for event in started:
        await event.wait()

    spec: dict[str, Any] = {} if args.replicas is None else {"replicas": args.replicas}
    before = await kube.write_counts()
    rss_before = proc.rss_mb()
    cpu_before = proc.cpu_seconds()
    plane_before = component_cpu(kube.env)
    semaphore = asyncio.Semaphore(CONCURRENCY)
    created = 0

    async def create(i: int) -> None:
        nonlocal created
        async with semaphore:
            status, body = await kube.request(
                "POST", f"/apis/coffee.example.com/v1alpha1/namespaces/{namespace}/coffeeservers",
                coffee_server(namespace, f"scale-{i:04d}", **spec))
            assert status == 201, body
            created += 1

    log(f"creating {count} CoffeeServers at once in {namespace} "
        f"({CONCURRENCY} requests in flight; spec.replicas "
        f"{'default' if args.replicas is None else args.replicas})")
    t0 = time.perf_counter()
    creating = asyncio.gather(*(create(i) for i in range(count)))
    t_created: float | None = None
    while t_deployments is None or t_statuses is None:
        await asyncio.sleep(1)
        if t_created is None and creating.done():
            creating.result()
            t_created = time.perf_counter() - t0
        log(f"t={time.perf_counter() - t0:5.1f}s  created {created}/{count}  "
            f"deployments {len(deployments)}/{count}  statuses current {len(current)}/{count}  "
            f"operator RSS {proc.rss_mb():.0f} MB")
        if time.perf_counter() - t0 > args.timeout:
            raise SystemExit(f"not reconciled within {args.timeout}s")
    await creating
    t_created = t_created or time.perf_counter() - t0

    cpu_reconciled = proc.cpu_seconds() - cpu_before
    cpu_text = format_cpu(plane_before, component_cpu(kube.env), cpu_reconciled)
    t_ready: float | None = None
    if which == "ours" and not args.apiserver_only:  # reference: no conditions; no pods
        log("all reconciled; waiting until every CoffeeServer is Ready (kwok pods) and quiet")
        ready_deadline = time.monotonic() + args.ready_timeout
        while len(ready) < count and time.monotonic() < ready_deadline:
            await asyncio.sleep(2)
            log(f"Ready {len(ready)}/{count}")
        t_ready = time.perf_counter() - t0
        if len(ready) < count:
            # Not a target: kwok on a saturated machine can miss node heartbeats, and the
            # node lifecycle controller then marks every pod NotReady for good.
            log(f"only {len(ready)}/{count} Ready after {args.ready_timeout:.0f}s more; "
                "going on (see the Deployments' Available condition and the kwok node)")
    else:
        log("all reconciled; waiting until the API server is quiet")
    await wait_quiet(kube)
    writes = delta(await kube.write_counts(), before)
    log(f"measuring writes while idle for {args.idle:.0f}s")
    idle_before = await kube.write_counts()
    await asyncio.sleep(args.idle)
    idle_after = await kube.write_counts()
    idle_writes = delta(idle_after, idle_before)
    peak = proc.peak_rss_mb()
    for task in watchers:
        task.cancel()

    dep_writes = sum(n for (verb, g, r, s), n in writes.items()
                     if r == "deployments" and not s and verb != "DELETE")
    svc_writes = sum(n for (verb, g, r, s), n in writes.items()
                     if r == "services" and not s and verb != "DELETE")
    print()
    print(f"[{which}] {count} CoffeeServers created at once "
          f"(spec.replicas {'default (2)' if args.replicas is None else args.replicas}):")
    print(f"  all CRs created (client)     : {t_created:6.2f} s")
    print(f"  all Deployments present      : {t_deployments:6.2f} s")
    print(f"  all statuses current         : {t_statuses:6.2f} s   (target <= 15 s)")
    if t_ready is not None:
        print(f"  Ready (pods via kwok)        : {len(ready)}/{count} after {t_ready:6.2f} s")
    print(f"  operator peak RSS (VmHWM)    : {peak:6.1f} MB (before the creates: "
          f"{rss_before:.1f} MB; target <= 150 MB)")
    print(f"  operator CPU until reconciled: {cpu_reconciled:6.1f} s "
          f"({cpu_reconciled / count * 1000:.1f} ms per CoffeeServer)")
    print(f"  CPU until reconciled         : {cpu_text}")
    print(f"  writes until quiet           : {format_writes(writes)}")
    print(f"  writes per child object      : Deployments {dep_writes / count:.2f}, "
          f"Services {svc_writes / count:.2f} (target <= 1 per reconcile)")
    idle_text = format_writes(idle_writes)
    print(f"  writes while idle {args.idle:.0f}s       : {idle_text} (target: none)")
    if args.kubeconfig:  # an external cluster; a local one is thrown away whole
        log(f"deleting namespace {namespace}")
        await kube.delete_namespace(namespace)
    return {"deployments": t_deployments, "statuses": t_statuses, "rss": peak,
            "cpu": cpu_reconciled}


async def main_async(args: argparse.Namespace, env: dict[str, str], proc: OperatorProcess,
                     which: str) -> dict[str, float]:
    kube = Kube(env)
    try:
        return await run(kube, proc, args, which)
    finally:
        await kube.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--replicas", type=int, default=None,
                        help="spec.replicas of every CR (default: the CRD default)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--ready-timeout", type=float, default=120.0,
                        help="after all are reconciled, how long to wait for all to be Ready")
    common_arguments(parser)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for which in operators(args):
        with control_plane(args) as env, operator_process(env, which) as proc:
            results[which] = asyncio.run(main_async(args, env, proc, which))
    if len(results) > 1:
        print("\nsame run, same kind of fresh control plane (ours vs reference):")
        for key, label, unit in (("deployments", "all Deployments present", "s"),
                                 ("statuses", "all statuses current", "s"),
                                 ("rss", "peak RSS", "MB"), ("cpu", "operator CPU", "s")):
            print(f"  {label:24s}: {results['ours'][key]:6.1f} {unit} vs "
                  f"{results['reference'][key]:6.1f} {unit}")


if __name__ == "__main__":
    main()
