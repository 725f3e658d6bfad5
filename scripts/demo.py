#!/usr/bin/env python3
"""`make demo`: watch coffee-operator turn a CoffeeServer into a running Deployment.

With no KUBECONFIG (the default), everything is local and throw-away: the real upstream
control plane from tests/cluster (etcd, kube-apiserver, controller-manager, scheduler, and
kwok simulating a node and its pods) starts on 127.0.0.1, the CRD is installed, the
operator runs as a local process, deploy/examples/minimal.yaml is applied, and the demo
shows `kubectl get coffeeservers` reaching Ready with the computed Gunicorn workers and
the Deployment behind it. Then it stops everything, also on Ctrl-C.

With KUBECONFIG set (or --kubeconfig), the same steps run against that cluster instead;
the demo first prints exactly what it will create there and asks before touching it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `tests.cluster` is the local control plane harness

VENV_BIN = Path(sys.executable).parent
CRD_NAME = "coffeeservers.coffee.example.com"
DEFAULT_EXAMPLE = REPO / "deploy" / "examples" / "minimal.yaml"
DEFAULT_NAMESPACE = "coffee-demo"
STARTED = time.monotonic()
#: Temporary directories holding operator logs: removed after a successful run, kept (and
#: named) after a failure so the log can be read.
LOG_DIRS: list[Path] = []


class DemoError(RuntimeError):
    """Something the person running the demo must know about; printed without a traceback."""


def say(message: str, *, out: TextIO = sys.stdout) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=out, flush=True)


def step(number: int, total: int, message: str) -> None:
    print(flush=True)
    say(f"== {number}/{total} {message}")


def show(title: str, text: str) -> None:
    print(f"\n$ {title}", flush=True)
    print(text.rstrip() or "(nothing)", flush=True)


# --------------------------------------------------------------------------- kubectl


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig, so nothing depends on the caller's shell state."""

    binary: Path
    kubeconfig: Path

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(
            [str(self.binary), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)} failed:\n{result.stderr.strip()}")
        return result

    def out(self, *args: str, **kwargs: Any) -> str:
        return self.run(*args, **kwargs).stdout


# --------------------------------------------------------------------------- operator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """`coffee-operator run` as a child process, logging to a file, stopped gracefully."""

    def __init__(self, kubeconfig: Path, scope: Sequence[str], log_path: Path, echo: bool):
        self.port = free_port()
        self.log_path = log_path
        self.echo = echo
        self.args = [
            str(VENV_BIN / "coffee-operator"),
            "run",
            *scope,
            "--standalone",
            f"--liveness=http://127.0.0.1:{self.port}/healthz",
        ]
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None

    def start(self, timeout: float = 60) -> None:
        say(f"starting: {' '.join(self.args[1:])}")
        say(f"operator log: {self.log_path}")
        # Its own session: a Ctrl-C in the terminal reaches the demo, which then stops the
        # operator in order (before the cluster it talks to).
        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._pump = threading.Thread(target=self._copy_log, daemon=True)
        self._pump.start()
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(f"the operator exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as rsp:
                if rsp.status == 200:
                    say(f"operator is up (pid {self.proc.pid}, liveness {url} answers 200)")
                    return
            time.sleep(0.3)
        raise DemoError(f"the operator did not become live within {timeout:.0f}s:\n{self.tail()}")

    def _copy_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log_path.open("a", encoding="utf-8") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                if self.echo:
                    print(f"    operator | {line.rstrip()}", flush=True)

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return "(no operator log)"
        return "\n".join(f"    operator | {line}" for line in text[-lines:])

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        say("stopping the operator (SIGTERM: kopf finishes its handlers and exits)")
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            say(f"the operator did not exit within {timeout:.0f}s; killing it")
            self.proc.kill()
            self.proc.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)
        say(f"operator stopped (exit code {self.proc.returncode})")


# --------------------------------------------------------------------------- the demo steps


def load_example(path: Path, image: str | None) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    servers = [d for d in docs if d.get("kind") == "CoffeeServer"]
    if len(servers) != 1:
        raise DemoError(f"{path}: expected exactly one CoffeeServer, found {len(servers)}")
    server = servers[0]
    if image:
        server["spec"]["image"] = image
    return server


def install_crd(kubectl: Kubectl) -> None:
    # `-k crds/` applies crds/coffeeserver.yaml through crds/Kustomization: the same
    # single source `kubectl apply -k deploy/` installs from.
    applied = kubectl.out("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "crds"))
    say(applied.strip())
    kubectl.run("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    say(f"CRD {CRD_NAME} is Established")


def ensure_namespace(kubectl: Kubectl, namespace: str) -> bool:
    """Create the namespace if missing; return True if this demo created it."""
    if kubectl.run("get", "namespace", namespace, check=False).returncode == 0:
        say(f"namespace {namespace} already exists; using it")
        return False
    kubectl.run("create", "namespace", namespace)
    say(f"created namespace {namespace}")
    return True


def summarize(cs: dict[str, Any]) -> str:
    status = cs.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    parts = [
        f"generation {cs['metadata'].get('generation')}"
        f" (observed {status.get('observedGeneration', '-')})",
        f"workers {status.get('workers', '-')} ({status.get('workersSource', '-')})",
        f"pods ready {status.get('readyReplicas', 0)}/{status.get('replicas', '-')}",
    ]
    for ctype in ("Ready", "Progressing", "Degraded"):
        cond = conditions.get(ctype)
        if cond:
            parts.append(f"{ctype}={cond.get('status')}({cond.get('reason', '')})")
    return ", ".join(parts)


def is_ready(cs: dict[str, Any]) -> bool:
    status = cs.get("status") or {}
    if status.get("observedGeneration") != cs["metadata"].get("generation"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def degraded(cs: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (cs.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Degraded" and cond.get("status") == "True":
            return cond
    return None


def wait_ready(
    kubectl: Kubectl, namespace: str, name: str, timeout: float, operator: OperatorProcess
) -> None:
    """Print each change of the CoffeeServer's status until it is Ready (or clearly not)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if operator.proc is not None and operator.proc.poll() is not None:
            code = operator.proc.returncode
            raise DemoError(f"the operator exited with {code}:\n{operator.tail()}")
        result = kubectl.run(
            "get", "coffeeserver", name, "-n", namespace, "-o", "json", check=False
        )
        if result.returncode == 0:
            cs = json.loads(result.stdout)
            line = summarize(cs)
            if line != last:
                say(f"coffeeserver/{name}: {line}")
                last = line
            if is_ready(cs):
                return
            bad = degraded(cs)
            if bad:
                raise DemoError(
                    f"coffeeserver/{name} is Degraded ({bad.get('reason')}): {bad.get('message')}"
                )
        time.sleep(0.5)
    raise DemoError(
        f"coffeeserver/{name} was not Ready within {timeout:.0f}s; last status: {last}\n"
        f"{operator.tail()}"
    )


def show_result(kubectl: Kubectl, namespace: str, name: str) -> None:
    ns = ["-n", namespace]
    # The command the README documents; it returns at once now that the server is Ready.
    kubectl.run("wait", "--for=condition=Ready", f"coffeeserver/{name}", *ns, "--timeout=30s")
    show(
        f"kubectl wait --for=condition=Ready coffeeserver/{name} -n {namespace}",
        f"coffeeserver.coffee.example.com/{name} condition met",
    )
    show(f"kubectl get coffeeservers -n {namespace}", kubectl.out("get", "coffeeservers", *ns))
    selector = f"app.kubernetes.io/instance={name}"
    show(
        f"kubectl get deployment,service,pods -n {namespace} -l {selector}",
        kubectl.out("get", "deployment,service,pods", *ns, "-l", selector, "-o", "wide"),
    )
    env_jsonpath = (
        '{range .spec.template.spec.containers[?(@.name=="app")].env[*]}'
        '{.name}={.value}{"\\n"}{end}'
    )
    env = kubectl.out("get", "deployment", name, *ns, "-o", f"jsonpath={env_jsonpath}")
    grace = kubectl.out(
        "get", "deployment", name, *ns,
        "-o", "jsonpath={.spec.template.spec.terminationGracePeriodSeconds}",
    )
    show(
        f"the Deployment's app container (env and grace period) -- deployment/{name}",
        "\n".join(line for line in env.splitlines() if line.startswith(("GUNICORN_", "RUN_MODE")))
        + f"\nterminationGracePeriodSeconds={grace}",
    )
    show(
        f"kubectl get events -n {namespace} --field-selector involvedObject.name={name}",
        kubectl.out(
            "get", "events", *ns, "--field-selector",
            f"involvedObject.name={name},involvedObject.kind=CoffeeServer",
            "--sort-by=.lastTimestamp",
        ),
    )


def demo_secret_values() -> dict[str, str]:
    """Values for the Secret keys the examples reference (see deploy/examples/minimal.yaml)."""
    return {
        "secret-key": secrets.token_urlsafe(50),
        "database-url": "sqlite:////tmp/coffee.sqlite3",
    }


def ensure_secrets(
    kubectl: Kubectl, namespace: str, server: dict[str, Any], created: list[str]
) -> None:
    """Create the Secrets the example references by secretKeyRef, if they are missing."""
    wanted: dict[str, set[str]] = {}
    for var in server["spec"].get("env") or []:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            wanted.setdefault(ref["name"], set()).add(ref["key"])
    values = demo_secret_values()
    for name, keys in sorted(wanted.items()):
        if kubectl.run("get", "secret", name, "-n", namespace, check=False).returncode == 0:
            say(f"secret {name} already exists; using it")
            continue
        unknown = keys - set(values)
        if unknown:
            raise DemoError(
                f"the example needs secret {name} with keys {sorted(unknown)}; create it in "
                f"namespace {namespace} first"
            )
        literals = [f"--from-literal={key}={values[key]}" for key in sorted(keys)]
        kubectl.run("create", "secret", "generic", name, "-n", namespace, *literals)
        created.append(name)
        say(f"created secret {name} ({', '.join(sorted(keys))}: a random Django key, "
            "SQLite under /tmp) -- the CoffeeServer only references it")


def apply_example(kubectl: Kubectl, namespace: str, server: dict[str, Any]) -> str:
    name = server["metadata"]["name"]
    doc = {**server, "metadata": {**server["metadata"], "namespace": namespace}}
    say(kubectl.out("apply", "-f", "-", stdin=yaml.safe_dump(doc)).strip())
    return name


def run_steps(
    kubectl: Kubectl,
    kubeconfig: Path,
    args: argparse.Namespace,
    server: dict[str, Any],
    scope: Sequence[str],
    first_step: int,
    total: int,
    stack: contextlib.ExitStack,
    remote: bool,
) -> None:
    n = first_step
    step(n, total, "Installing the CoffeeServer CRD from crds/")
    install_crd(kubectl)

    n += 1
    step(n, total, "Starting the operator (.venv/bin/coffee-operator run)")
    created_ns = ensure_namespace(kubectl, args.namespace)
    log_dir = Path(tempfile.mkdtemp(prefix="coffee-demo-"))
    LOG_DIRS.append(log_dir)
    log_path = log_dir / "operator.log"
    operator = OperatorProcess(kubeconfig, scope, log_path, echo=args.operator_logs)
    stack.callback(operator.stop)
    created_secrets: list[str] = []
    if remote and not args.keep:
        # Registered after the operator's stop, so it runs first (LIFO), while the operator
        # is still there to process the deletion: nothing is left half-finalized.
        stack.callback(
            cleanup_remote, kubectl, args.namespace, server, created_ns, created_secrets
        )
    operator.start()

    n += 1
    example = args.example.relative_to(REPO) if args.example.is_relative_to(REPO) else args.example
    step(n, total, f"Applying {example} in namespace {args.namespace}")
    ensure_secrets(kubectl, args.namespace, server, created_secrets)
    name = apply_example(kubectl, args.namespace, server)

    n += 1
    step(n, total, f"Waiting for coffeeserver/{name} to become Ready")
    wait_ready(kubectl, args.namespace, name, args.timeout, operator)
    say(f"coffeeserver/{name} is Ready")
    show_result(kubectl, args.namespace, name)


def cleanup_remote(
    kubectl: Kubectl,
    namespace: str,
    server: dict[str, Any],
    created_ns: bool,
    created_secrets: list[str],
) -> None:
    name = server["metadata"]["name"]
    say(f"cleaning up: deleting coffeeserver/{name} in {namespace} (its children are GC'd)")
    kubectl.run(
        "delete", "coffeeserver", name, "-n", namespace, "--ignore-not-found", "--timeout=60s",
        check=False,
    )
    for secret in created_secrets:
        kubectl.run("delete", "secret", secret, "-n", namespace, "--ignore-not-found", check=False)
    if created_ns:
        say(f"deleting namespace {namespace} (created by this demo)")
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


# --------------------------------------------------------------------------- modes


def local_demo(args: argparse.Namespace, server: dict[str, Any]) -> None:
    from tests.cluster.localcluster import LocalCluster, ensure_binaries

    total = 6
    step(1, total, "Control-plane binaries (built from Go modules once, then cached)")
    bin_dir = Path(ensure_binaries())
    say(f"binaries ready in {bin_dir}")

    step(2, total, "Starting a local control plane: etcd, kube-apiserver, controller-manager, "
         "scheduler, kwok (one simulated node)")
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(LocalCluster())
        say(f"API server {cluster.server} is ready; kubeconfig {cluster.kubeconfig}")
        kubectl = Kubectl(Path(cluster.bin_dir) / "kubectl", Path(cluster.kubeconfig))
        run_steps(
            kubectl, Path(cluster.kubeconfig), args, server, ["--all-namespaces"],
            first_step=3, total=total, stack=stack, remote=False,
        )
        print(flush=True)
        say("demo done; stopping the operator and the local control plane")


def describe_remote(kubectl: Kubectl, kubeconfig: Path) -> tuple[str, str]:
    context = kubectl.out("config", "current-context", check=False).strip() or "(none)"
    server = kubectl.out(
        "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}", check=False
    ).strip()
    return context, server or "(unknown)"


def confirm(plan: str, assume_yes: bool) -> None:
    print(plan, flush=True)
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise DemoError(
            "not touching that cluster without confirmation: re-run with --yes "
            "(make demo DEMO_ARGS=--yes), or unset KUBECONFIG for the local demo"
        )
    if input("Proceed? [y/N] ").strip().lower() not in {"y", "yes"}:
        raise DemoError("aborted; nothing was changed")


def remote_demo(args: argparse.Namespace, server: dict[str, Any], kubeconfig: Path) -> None:
    binary = shutil.which("kubectl")
    if binary is None:
        from tests.cluster.localcluster import ensure_binaries

        binary = str(Path(ensure_binaries()) / "kubectl")
    kubectl = Kubectl(Path(binary), kubeconfig)
    context, api = describe_remote(kubectl, kubeconfig)
    name = server["metadata"]["name"]
    keep = (
        "kept (--keep): delete them later with "
        f"`kubectl delete coffeeserver {name} -n {args.namespace}`"
        if args.keep
        else "deleted again at the end (the CoffeeServer; the namespace too if the demo created it)"
    )
    plan = f"""
KUBECONFIG is set, so this demo runs against a real cluster, not a local one:
  kubeconfig: {kubeconfig}
  context:    {context}
  API server: {api}
It will:
  1. install or update the CustomResourceDefinition {CRD_NAME} (cluster-wide; kept afterwards)
  2. create namespace {args.namespace} if it does not exist
  3. run the operator on THIS machine with your credentials, standalone, watching only
     namespace {args.namespace} (if coffee-operator is already installed in the cluster,
     it will also act on that namespace: use a namespace it does not watch)
  4. create the Secret(s) it references if missing (a random Django key, SQLite under /tmp),
     apply CoffeeServer {name} (image {server['spec']['image']}) in {args.namespace}; its
     Deployment and Service are created there, and the image must be pullable by the cluster
  5. wait up to {args.timeout:.0f}s for Ready, show the result; the objects are then
     {keep}
"""
    if not args.image:
        plan += (
            "  note: the example's image is a local build name; pass --image REGISTRY/IMAGE:TAG\n"
            "        if your cluster cannot pull it, or the pods will never become Ready.\n"
        )
    confirm(plan, args.yes)
    with contextlib.ExitStack() as stack:
        run_steps(
            kubectl, kubeconfig, args, server, ["--namespace", args.namespace],
            first_step=1, total=4, stack=stack, remote=True,
        )
        print(flush=True)
        say("demo done; cleaning up" if not args.keep else "demo done; stopping the operator")


# --------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Show coffee-operator at work: a local throw-away control plane by "
        "default, or the cluster in KUBECONFIG/--kubeconfig.",
    )
    parser.add_argument("--kubeconfig", type=Path, default=None,
                        help="run against this cluster (default: $KUBECONFIG; unset = local)")
    parser.add_argument("--local", action="store_true",
                        help="use the local control plane even if KUBECONFIG is set")
    parser.add_argument("-n", "--namespace", default=DEFAULT_NAMESPACE,
                        help=f"namespace for the example (default {DEFAULT_NAMESPACE})")
    parser.add_argument("-f", "--example", type=Path, default=DEFAULT_EXAMPLE,
                        help="CoffeeServer manifest (default deploy/examples/minimal.yaml)")
    parser.add_argument("--image", default=None, help="override the example's spec.image")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds to wait for Ready (default 180)")
    parser.add_argument("--operator-logs", action="store_true",
                        help="stream the operator's log lines (always written to a file)")
    parser.add_argument("-y", "--yes", action="store_true",
                        help="real cluster: do not ask for confirmation")
    parser.add_argument("--keep", action="store_true",
                        help="real cluster: leave the example (and namespace) in place")
    args = parser.parse_args(argv)
    args.example = args.example.resolve()
    return args


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """`kill PID` cleans up like Ctrl-C does."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    kubeconfig_env = os.environ.get("KUBECONFIG", "")
    kubeconfig = args.kubeconfig or (Path(kubeconfig_env) if kubeconfig_env else None)
    try:
        server = load_example(args.example, args.image)
        with sigterm_as_interrupt():
            if kubeconfig is None or args.local:
                say("no KUBECONFIG: running everything locally; nothing outside this machine "
                    "is touched")
                local_demo(args, server)
            else:
                remote_demo(args, server, kubeconfig.expanduser().resolve())
    except KeyboardInterrupt:
        print(flush=True)
        say("interrupted; everything started by the demo has been stopped")
        return 130
    except DemoError as exc:
        say(f"FAILED: {exc}", out=sys.stderr)
        for log_dir in LOG_DIRS:
            say(f"operator log kept: {log_dir / 'operator.log'}", out=sys.stderr)
        return 1
    for log_dir in LOG_DIRS:
        shutil.rmtree(log_dir, ignore_errors=True)
    say("all stopped. See README.md for installing coffee-operator on a real cluster.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
