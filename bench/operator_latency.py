#!/usr/bin/env python
"""CR created -> Deployment present: p50/p99 over sequential creates (SPEC 7: 25/75 ms).

Method: one namespace, a client-side watch on its Deployments (LIST+WATCH, started
before the first create). For each of N CoffeeServers, one at a time: POST the CR,
then wait until the watch delivers the Deployment's ADDED event. Two latencies per
sample, both on the client's monotonic clock:
  - from the moment the create request is sent (includes the POST itself), and
  - from the moment the POST returned (the CR exists in the API server).
A few warm-up creates run first and are not counted. Writes are counted from
the API server's own apiserver_request_total.

    .venv/bin/python bench/operator_latency.py [--count 200] [--kubeconfig FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from operator_common import (
    Kube,
    coffee_server,
    common_arguments,
    control_plane,
    delta,
    format_writes,
    log,
    operator_process,
    operators,
    percentile,
)


async def measure(
    kube: Kube, count: int, warmup: int, gap: float, spec: dict, cleanup: bool
) -> tuple[list[float], list[float], dict]:
    namespace = f"bench-latency-{uuid.uuid4().hex[:6]}"
    await kube.create_namespace(namespace)
    seen: dict[str, float] = {}
    arrived: dict[str, asyncio.Event] = {}

    def on_event(kind: str, obj: dict) -> None:
        name = obj["metadata"]["name"]
        if kind == "ADDED" and name not in seen:
            seen[name] = time.perf_counter()
            arrived.setdefault(name, asyncio.Event()).set()

    started = asyncio.Event()
    watcher = asyncio.create_task(
        kube.watch(f"/apis/apps/v1/namespaces/{namespace}/deployments", on_event, started))
    await started.wait()

    from_sent: list[float] = []
    from_created: list[float] = []
    before = await kube.write_counts()
    total = warmup + count
    for i in range(total):
        name = f"lat-{i:04d}"
        arrived.setdefault(name, asyncio.Event())
        t_sent = time.perf_counter()
        status, body = await kube.request(
            "POST", f"/apis/coffee.example.com/v1alpha1/namespaces/{namespace}/coffeeservers",
            coffee_server(namespace, name, **spec))
        t_created = time.perf_counter()
        assert status == 201, body
        await asyncio.wait_for(arrived[name].wait(), timeout=30)
        if i >= warmup:
            from_sent.append((seen[name] - t_sent) * 1000)
            from_created.append((seen[name] - t_created) * 1000)
        if gap:
            await asyncio.sleep(gap)
        if (i + 1) % 20 == 0 or i + 1 == total:
            recent = from_sent[-20:] or [0.0]
            log(f"{i + 1}/{total} created; last 20: median "
                f"{sorted(recent)[len(recent) // 2]:.1f} ms")
    await asyncio.sleep(2)  # let the status writes of the last CRs land
    writes = delta(await kube.write_counts(), before)
    watcher.cancel()
    if cleanup:  # an external cluster; a local one is thrown away whole
        await kube.delete_namespace(namespace)
    return from_sent, from_created, dict(writes)


async def main_async(args: argparse.Namespace, env: dict[str, str], which: str) -> dict:
    kube = Kube(env)
    try:
        spec = {} if args.replicas is None else {"replicas": args.replicas}
        sent, created, writes = await measure(kube, args.count, args.warmup, args.gap, spec,
                                              cleanup=bool(args.kubeconfig))
    finally:
        await kube.close()
    return {"operator": which, "sent": sent, "created": created, "writes": writes}


def report(args: argparse.Namespace, result: dict) -> None:
    sent, created = result["sent"], result["created"]
    pause = f", {args.gap}s pause between creates" if args.gap else ", back to back"
    pause += f", spec.replicas {'default (2)' if args.replicas is None else args.replicas}"
    print(f"\n[{result['operator']}] CR create -> Deployment present, {len(sent)} sequential "
          f"creates{pause} ({args.warmup} warm-up creates not counted):")
    print(f"  from request sent : p50 {percentile(sent, 50):6.1f} ms   "
          f"p99 {percentile(sent, 99):6.1f} ms   max {max(sent):6.1f} ms")
    print(f"  from CR persisted : p50 {percentile(created, 50):6.1f} ms   "
          f"p99 {percentile(created, 99):6.1f} ms   max {max(created):6.1f} ms")
    print("  targets (SPEC 7)  : p50 <= 25 ms, p99 <= 75 ms (from CR persisted)")
    print(f"  API writes during the run (apiserver_request_total): "
          f"{format_writes(result['writes'])}")
    print(f"  operator peak RSS (VmHWM): {result['rss']:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--gap", type=float, default=0.0,
                        help="pause after each create (default 0: the next create is sent as "
                        "soon as the previous Deployment appeared)")
    parser.add_argument("--replicas", type=int, default=None,
                        help="spec.replicas of every CR (default: the CRD default, 2)")
    common_arguments(parser)
    args = parser.parse_args()
    results = []
    for which in operators(args):
        with control_plane(args) as env, operator_process(env, which) as proc:
            result = asyncio.run(main_async(args, env, which))
            result["rss"] = proc.peak_rss_mb()
        results.append(result)
    for result in results:
        report(args, result)
    if len(results) > 1:
        base = {r["operator"]: r["created"] for r in results}
        if "ours" in base and "reference" in base:
            print(f"\n  ours vs reference (from CR persisted): p50 "
                  f"{percentile(base['ours'], 50):.1f} vs {percentile(base['reference'], 50):.1f}"
                  f" ms, p99 {percentile(base['ours'], 99):.1f} vs "
                  f"{percentile(base['reference'], 99):.1f} ms")


if __name__ == "__main__":
    main()
