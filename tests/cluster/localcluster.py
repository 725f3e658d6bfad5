"""A real, throw-away Kubernetes control plane on 127.0.0.1 for tests and demos.

The same approach as controller-runtime's envtest, plus the controllers: etcd,
kube-apiserver, kube-controller-manager and kube-scheduler built from upstream
Go modules (see build.py), and kwok simulating one node so that Deployments
really get ReplicaSets, scheduled Running pods and become Available. Every
start uses fresh ports, certificates and storage; stop() (also run on
interpreter exit, SIGTERM and SIGHUP) kills every process group it started.

Command line (what ``make cluster`` runs)::

    python -m tests.cluster.localcluster up      # start, print KUBECONFIG, wait for Ctrl-C
    python -m tests.cluster.localcluster build   # only build/cache the binaries
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from . import processes
from .build import KWOK_STAGES_FILE, Progress, ensure_binaries, kubernetes_version
from .manifests import (
    KWOK_ANNOTATION,
    NODE_NAME,
    crd_established,
    kubeconfig_document,
    kwok_node_manifest,
    node_ready,
)
from .pki import CertificateAuthority, KeyPair, service_account_keys
from .processes import ClusterStartError, Component, free_port

__all__ = [
    "CRDS_DIR",
    "REPO_ROOT",
    "ClusterStartError",
    "KubectlError",
    "LocalCluster",
    "ensure_binaries",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO_ROOT / "crds"
# Large enough for the operator's scale benchmark (a /24 runs out at ~250 ClusterIP Services).
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
START_TIMEOUT = 120.0
START_ATTEMPTS = 3
# Fewer garbage collections while the API server builds its OpenAPI models: ~20% less CPU
# to /readyz on 2 busy cores. The memory limit makes the GC work harder again near 2 GiB.
GO_RUNTIME_ENV = {"GOGC": "400", "GOMEMLIMIT": "2GiB"}
STOP_GRACE_SECONDS = 5.0
RUN_DIR_PREFIX = "coffee-k8s-"


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike CalledProcessError its message includes kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


@dataclass(eq=False)
class LocalCluster:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on loopback.

    Use as a context manager (or call start()/stop()). After start(): ``kubeconfig`` is an
    admin (system:masters) kubeconfig, ``server`` the https URL, ``bin_dir`` holds our own
    kubectl (the same version as the server), ``env`` is os.environ with KUBECONFIG set and
    bin_dir first on PATH (pass it to subprocesses such as the operator).
    Start it from the main thread: children are tied to the starting thread's lifetime.
    """

    crds_dir: Path | None = CRDS_DIR
    #: False: etcd + kube-apiserver only (no controller-manager, scheduler, kwok or node):
    #: for measuring a client of the API alone, with no controllers writing meanwhile.
    #: Without the controller-manager nothing is garbage-collected and namespaces never
    #: finish deleting.
    controllers: bool = True
    progress: Progress = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))
    keep_run_dir: bool = field(default_factory=lambda: bool(os.environ.get("COFFEE_K8S_KEEP")))

    run_dir: Path = field(init=False)
    bin_dir: Path = field(init=False)
    kubeconfig: Path = field(init=False)
    server: str = field(init=False)
    env: dict[str, str] = field(init=False)
    node_name: str = field(init=False, default=NODE_NAME)
    timings: dict[str, float] = field(init=False, default_factory=dict)
    _components: list[Component] = field(init=False, default_factory=list)
    _ssl: ssl.SSLContext | None = field(init=False, default=None)
    _started_at: float = field(init=False, default=0.0)

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        """Build (first time only), start every component, wait until usable, install CRDs."""
        self._started_at = time.monotonic()
        self.bin_dir = ensure_binaries(self.progress)
        self._mark("binaries")
        for attempt in range(1, START_ATTEMPTS + 1):
            processes.prune_orphaned_run_dirs(RUN_DIR_PREFIX)
            self.run_dir = processes.make_run_dir(RUN_DIR_PREFIX)
            self.kubeconfig = self.run_dir / "kubeconfig"
            processes.register(self)
            try:
                self._start_control_plane()
                return self
            except ClusterStartError as err:
                # The free ports we picked can be taken by another process before our
                # component binds them (other clusters start on this machine too).
                if "address already in use" not in str(err) or attempt == START_ATTEMPTS:
                    self._fail_start()
                    raise
                self.progress(f">> a port was taken meanwhile, retrying (attempt {attempt + 1})")
                self.stop()
            except BaseException:
                self._fail_start()
                raise
        raise AssertionError("unreachable")

    def _fail_start(self) -> None:
        self.progress(f"!! local cluster failed to start; logs kept in {self.run_dir}")
        self.keep_run_dir = True
        self.stop()

    def stop(self) -> None:
        """Kill every process group (SIGTERM, then SIGKILL), remove the run dir. Idempotent.

        Reverse start order, one at a time: kube-apiserver shuts down in about a second
        while etcd is still there, but waits out its whole grace period once etcd is gone.
        """
        components, self._components = self._components, []
        for comp in reversed(components):
            comp.stop(STOP_GRACE_SECONDS)
        processes.unregister(self)
        run_dir = getattr(self, "run_dir", None)
        if run_dir is not None and run_dir.exists():
            if self.keep_run_dir:
                processes.keep_run_dir(run_dir)
            else:
                shutil.rmtree(run_dir, ignore_errors=True)

    @property
    def pids(self) -> list[int]:
        """Process ids of the running components (tests use it to check teardown)."""
        return [c.proc.pid for c in self._components]

    # ----------------------------------------------------------------- helpers for callers
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run our kubectl on this cluster; with check, failure raises KubectlError (+stderr)."""
        cmd = [str(self.bin_dir / "kubectl"), *args]
        result = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    def api_request(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        """Raw admin HTTPS call: (status, JSON or text). Cheaper than starting kubectl."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def install_crds(self, crds_dir: Path | None = None) -> list[str]:
        """``kubectl apply -f crds/``; wait until Established and their first LIST succeeds."""
        crds_dir = crds_dir or self.crds_dir or CRDS_DIR
        applied = self.kubectl("apply", "-f", str(crds_dir), "-o", "name").stdout.split()
        names = [n.split("/", 1)[1] for n in applied if n.startswith("customresourcedefinition")]
        if not names:
            return []
        for name in names:
            crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            self._wait(
                f"CRD {name} Established",
                lambda path=crd_path: crd_established(self._get(path)),
            )
            _, crd = self.api_request(crd_path)
            group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
            version = next(v["name"] for v in crd["spec"]["versions"] if v.get("served"))
            # A fresh CRD's first LISTs may answer 429 (or 404) while its storage warms up.
            list_path = f"/apis/{group}/{version}/{plural}"
            self._wait(
                f"the first LIST of {plural}.{group}",
                lambda path=list_path: self.api_request(path)[0] == 200,
            )
        return names

    # ----------------------------------------------------------------- internals
    def _mark(self, stage: str) -> None:
        self.timings[stage] = round(time.monotonic() - self._started_at, 2)

    def _spawn(self, name: str, args: Sequence[str]) -> Component:
        """Start one component; its output goes to <run_dir>/<name>.log."""
        comp = Component.spawn(
            name,
            [str(self.bin_dir / name), *args],
            log_path=self.run_dir / f"{name}.log",
            cwd=self.run_dir,
            env={**os.environ, **GO_RUNTIME_ENV},
        )
        self._components.append(comp)
        return comp

    def _get(self, path: str) -> dict[str, Any]:
        """GET a JSON object; {} when it is not (yet) there."""
        status, body = self.api_request(path)
        return body if status == 200 and isinstance(body, dict) else {}

    def _check_alive(self, what: str) -> None:
        for comp in self._components:
            if not comp.alive():
                raise comp.failure(what)

    def _wait(
        self,
        what: str,
        ready: Callable[[], bool],
        culprit: str = "kube-apiserver",
        timeout: float = START_TIMEOUT,
        every: float = 0.1,
    ) -> None:
        """Poll until ready() is true; fail fast (with log tail) if a component dies meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(f"while waiting for {what}")
            try:
                if ready():
                    return
            except (OSError, ssl.SSLError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                suspect = next((c for c in self._components if c.name == culprit), None)
                detail = f"\n{suspect.failure('not ready')}" if suspect else ""
                raise ClusterStartError(
                    f"timed out after {timeout:.0f}s waiting for {what}{detail}"
                )
            time.sleep(every)

    def _write_kubeconfig(self, path: Path, ca: KeyPair, user: KeyPair) -> Path:
        document = kubeconfig_document(
            self.server, ca.cert.read_bytes(), user.cert.read_bytes(), user.key.read_bytes()
        )
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        path.chmod(0o600)
        return path

    def _start_control_plane(self) -> None:
        d = self.run_dir
        pki_dir = d / "pki"
        pki_dir.mkdir()
        ca = CertificateAuthority.create(pki_dir)
        serving = ca.issue(
            pki_dir,
            "apiserver",
            "kube-apiserver",
            server=True,
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=("127.0.0.1", "10.96.0.1"),
        )
        # Kubernetes reads the user from CN and groups from O of a client certificate.
        admin = ca.issue(
            pki_dir, "admin", "coffee-admin", organization="system:masters", client=True
        )
        kcm = ca.issue(
            pki_dir, "kube-controller-manager", "system:kube-controller-manager", client=True
        )
        scheduler = ca.issue(pki_dir, "kube-scheduler", "system:kube-scheduler", client=True)
        # kwok stands in for every kubelet (node status, leases, pod status): give it admin rights.
        kwok = ca.issue(
            pki_dir, "kwok", "kwok-controller", organization="system:masters", client=True
        )
        sa = service_account_keys(pki_dir)
        self._mark("certificates")

        etcd_port, etcd_peer_port, api_port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        self._ssl = ssl.create_default_context(cafile=str(ca.files.cert))
        self._ssl.load_cert_chain(str(admin.cert), str(admin.key))
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{etcd_peer_port}"
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",  # throw-away data: durability only costs time here
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={d / 'apiserver'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.files.cert}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Endpoints may not point at loopback; nothing needs the `kubernetes` endpoints.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait(
            "kube-apiserver /readyz", lambda: self.api_request("/readyz")[0] == 200, every=0.1
        )
        self._mark("readyz")
        self._write_kubeconfig(self.kubeconfig, ca.files, admin)
        self.env = dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            PATH=f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        )

        if not self.controllers:
            if self.crds_dir is not None and any(self.crds_dir.glob("*.y*ml")):
                self.install_crds(self.crds_dir)
                self._mark("crds")
            self._check_alive("after start-up")
            self._mark("total")
            return

        kcm_config = self._write_kubeconfig(d / "kube-controller-manager.kubeconfig", ca.files, kcm)
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kcm_config}",
                "--secure-port=0",  # no serving endpoint needed, and no port to collide on
                "--leader-elect=false",
                # Each controller acts as its own service account (bootstrap RBAC roles).
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.files.cert}",
                f"--cluster-signing-cert-file={ca.files.cert}",
                f"--cluster-signing-key-file={ca.files.key}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--v=1",
            ],
        )
        sched_config = self._write_kubeconfig(d / "kube-scheduler.kubeconfig", ca.files, scheduler)
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={sched_config}",
                "--secure-port=0",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        kwok_config = self._write_kubeconfig(d / "kwok.kubeconfig", ca.files, kwok)
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={kwok_config}",
                f"--config={self.bin_dir / KWOK_STAGES_FILE}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                f"--cidr={POD_CIDR}",
            ],
        )
        status, body = self.api_request("/api/v1/nodes", "POST", kwok_node_manifest(self.node_name))
        if status != 201:
            raise ClusterStartError(f"creating node {self.node_name} failed: HTTP {status}: {body}")
        # CRDs go in while the controllers and kwok start up (it only needs the API server).
        if self.crds_dir is not None and any(self.crds_dir.glob("*.y*ml")):
            self.install_crds(self.crds_dir)
            self._mark("crds")
        self._wait(
            f"node {self.node_name} Ready",
            lambda: node_ready(self._get(f"/api/v1/nodes/{self.node_name}")),
            culprit="kwok",
        )
        self._mark("node_ready")
        # The serviceaccount controller creating `default` shows the controller-manager works.
        self._wait(
            "the controller-manager (default ServiceAccount)",
            lambda: (
                self.api_request("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
            ),
            culprit="kube-controller-manager",
        )
        self._mark("controllers")
        self._check_alive("after start-up")
        self._mark("total")


# --------------------------------------------------------------------- command line
def _cmd_up(args: argparse.Namespace) -> int:
    # Ctrl-C stops the cluster even when started from something that ignores SIGINT for
    # its children (a non-interactive shell's `&` jobs, nohup): Python would inherit that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    crds = None if args.no_crds else Path(args.crds)
    with LocalCluster(crds_dir=crds, keep_run_dir=args.keep) as cluster:
        print(
            f">> Kubernetes {kubernetes_version()} is up at {cluster.server} "
            f"(node {cluster.node_name}; timings in s since start: {cluster.timings})",
            flush=True,
        )
        print(f">> component logs: {cluster.run_dir}/*.log", flush=True)
        print("\n# in another shell:", flush=True)
        print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
        print(f"export PATH={cluster.bin_dir}:$PATH", flush=True)
        print("\n>> press Ctrl-C to stop the cluster", flush=True)
        try:
            while True:
                time.sleep(1)
                cluster._check_alive("while running")
        except KeyboardInterrupt:
            print("\n>> stopping", flush=True)
    print(">> stopped; no processes left", flush=True)
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    print(ensure_binaries())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cluster.localcluster", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a local cluster and wait for Ctrl-C")
    up.add_argument(
        "--crds", default=str(CRDS_DIR), help="folder of CRDs to apply (default: %(default)s)"
    )
    up.add_argument("--no-crds", action="store_true", help="do not install any CRDs")
    up.add_argument(
        "--keep", action="store_true", help="keep the run dir (logs, certs) after stopping"
    )
    up.set_defaults(func=_cmd_up)
    build = sub.add_parser(
        "build", help="build and cache the control-plane binaries, print their folder"
    )
    build.set_defaults(func=_cmd_build)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ClusterStartError as err:
        print(f"!! {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
