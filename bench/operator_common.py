"""Shared plumbing for bench/operator_latency.py and bench/operator_scale.py.

A benchmark gets a control plane (a fresh ``LocalCluster``, or ``--kubeconfig`` of a
running one), starts the real ``coffee-operator run`` process, and talks to the API
server with a small aiohttp client built from the same kubeconfig (so the measuring
side adds no thread pools or sync clients to the timings).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from app_common import process_stats  # noqa: E402

from tests.operator.integration.support import (  # noqa: E402
    OperatorProcess,
    WriteKey,
    delta,
    parse_write_counts,
)

GROUP_PATH = "/apis/coffee.example.com/v1alpha1"
IMAGE = "registry.example.com/coffee-payments:1.0"

__all__ = ["OperatorProcess", "WriteKey", "delta", "parse_write_counts"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="use this running cluster instead of starting a "
                        "local control plane (tests/cluster)")
    parser.add_argument("--operator", choices=OPERATORS, action="append",
                        help="which operator to measure, repeatable: 'ours' (coffee-operator) "
                        "and/or 'reference' (bench/reference_operator.py, the minimal kopf "
                        "operator SPEC 7 compares against); default: both, one after the "
                        "other, each on a fresh local control plane")
    parser.add_argument("--apiserver-only", action="store_true",
                        help="start only etcd + kube-apiserver (no controller-manager, "
                        "scheduler or kwok): the operator alone writes, nothing else does")


@contextlib.contextmanager
def control_plane(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    """Yield the environment (KUBECONFIG, PATH) of a cluster: given, or started here."""
    if args.kubeconfig:
        env = dict(os.environ, KUBECONFIG=str(Path(args.kubeconfig).resolve()))
        yield env
        return
    from tests.cluster.localcluster import LocalCluster

    parts = ("etcd, kube-apiserver" if args.apiserver_only
             else "etcd, kube-apiserver, controller-manager, scheduler, kwok")
    log(f"starting a local control plane ({parts}); the first run builds it from source "
        "and takes minutes")
    with LocalCluster(controllers=not args.apiserver_only, progress=lambda m: log(m)) as cluster:
        log(f"control plane ready at {cluster.server}")
        yield cluster.env


OPERATORS = ("ours", "reference")
REFERENCE = Path(__file__).with_name("reference_operator.py")


class ReferenceOperatorProcess(OperatorProcess):
    """``kopf run bench/reference_operator.py``, started and stopped like ours."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.args = [str(REPO_ROOT / ".venv" / "bin" / "kopf"), "run", str(REFERENCE),
                     "--all-namespaces", "--standalone",
                     "--liveness", f"http://127.0.0.1:{self.port}/healthz"]


def operators(args: argparse.Namespace) -> list[str]:
    return list(dict.fromkeys(args.operator or OPERATORS))


@contextlib.contextmanager
def operator_process(env: dict[str, str], which: str = "ours") -> Iterator[OperatorProcess]:
    if which == "reference":
        log(f"starting the reference operator: .venv/bin/kopf run {REFERENCE.name} "
            "--all-namespaces --standalone")
        proc: OperatorProcess = ReferenceOperatorProcess(env)
    else:
        log("starting the operator: .venv/bin/coffee-operator run --all-namespaces --standalone")
        proc = OperatorProcess(env, ("--all-namespaces",))
    proc.start()
    log(f"operator live (pid {proc.pid}, log {proc.log_path})")
    try:
        yield proc
    finally:
        code = proc.stop()
        log(f"operator stopped with exit code {code}")


COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")


def component_cpu(env: dict[str, str]) -> dict[str, float]:
    """CPU seconds used so far by each control-plane process of this cluster (/proc).

    The components are found by their command line naming the cluster's run directory
    (the folder of its kubeconfig), so another cluster on the machine is not counted.
    An external cluster (``--kubeconfig``) usually has no local processes: empty result.
    """
    run_dir = str(Path(env["KUBECONFIG"]).parent).encode()
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for pid, fields in process_stats():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = Path(argv[0].decode(errors="replace")).name
        if name in COMPONENTS and run_dir in b" ".join(argv):
            found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return found


def format_cpu(before: dict[str, float], after: dict[str, float], operator: float) -> str:
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    used["operator"] = operator
    total = sum(used.values())
    return ", ".join(f"{name} {sec:.1f} s" for name, sec in
                     sorted(used.items(), key=lambda kv: -kv[1])) + f" (total {total:.1f} s)"


class Kube:
    """Async JSON client for the benchmark's own requests and watches."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        import kopf

        os.environ["KUBECONFIG"] = env["KUBECONFIG"]
        info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
        assert info is not None, "no credentials in KUBECONFIG"
        self.session = aiohttp.ClientSession(
            base_url=info.server.rstrip("/") + "/",
            connector=aiohttp.TCPConnector(limit=64, ssl=info.as_ssl_context()),
            headers={**info.as_http_headers(), "User-Agent": "coffee-bench"},
        )

    async def request(self, method: str, path: str, body: Any = None,
                      content_type: str = "application/json") -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        async with self.session.request(method, path.lstrip("/"), data=data,
                                        headers={"Content-Type": content_type}) as resp:
            raw = await resp.read()
            try:
                return resp.status, json.loads(raw)
            except ValueError:
                return resp.status, raw.decode(errors="replace")

    async def metrics(self) -> str:
        async with self.session.get("metrics") as resp:
            return await resp.text()

    async def write_counts(self) -> Any:
        return parse_write_counts(await self.metrics())

    async def create_namespace(self, name: str) -> None:
        status, body = await self.request("POST", "/api/v1/namespaces",
                                          {"metadata": {"name": name}})
        assert status in (201, 409), body

    async def delete_namespace(self, name: str, timeout: float = 600.0) -> None:
        """Delete and wait until it is gone, so the next run starts from a clean cluster."""
        await self.request("DELETE", f"/api/v1/namespaces/{name}")
        started = time.monotonic()
        next_log = started + 10
        while time.monotonic() - started < timeout:
            status, _ = await self.request("GET", f"/api/v1/namespaces/{name}")
            if status == 404:
                return
            if time.monotonic() >= next_log:
                log(f"waiting for namespace {name} to be deleted "
                    f"({time.monotonic() - started:.0f}s)")
                next_log += 10
            await asyncio.sleep(0.5)
        raise RuntimeError(f"namespace {name} still there after {timeout:.0f}s")

    async def watch(self, path: str, on_event: Callable[[str, dict[str, Any]], Awaitable[None]
                                                          | None],
                    started: asyncio.Event) -> None:
        """LIST then WATCH from its resourceVersion; call ``on_event(type, object)``."""
        status, listing = await self.request("GET", path)
        assert status == 200, listing
        for item in listing.get("items", []):
            result = on_event("ADDED", item)
            if asyncio.iscoroutine(result):
                await result
        rv = listing["metadata"]["resourceVersion"]
        started.set()
        while True:
            params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true",
                      "timeoutSeconds": "600"}
            async with self.session.get(path.lstrip("/"), params=params,
                                        timeout=aiohttp.ClientTimeout(total=None)) as resp:
                async for line in _lines(resp):
                    event = json.loads(line)
                    obj = event["object"]
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        result = on_event(event["type"], obj)
                        if asyncio.iscoroutine(result):
                            await result

    async def close(self) -> None:
        await self.session.close()


async def _lines(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for line in resp.content:
        if line.strip():
            yield line


def coffee_server(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coffee.example.com/v1alpha1",
        "kind": "CoffeeServer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": IMAGE, **spec},
    }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, int(-(-pct * len(ordered) // 100)))
    return ordered[rank - 1]


def format_writes(writes: dict[WriteKey, int]) -> str:
    if not writes:
        return "none"
    parts = []
    for (verb, group, resource, sub), n in sorted(writes.items()):
        name = f"{resource}/{sub}" if sub else resource
        parts.append(f"{verb} {group + '/' if group else ''}{name}={n}")
    return ", ".join(parts)
