"""Build the upstream control-plane programs from the Go modules in this folder.

Only go.mod/go.sum (and tools.go) are committed; the binaries are built on
first use and cached outside the repository, keyed by the Kubernetes version
and a hash of the module files, so editing a version pin rebuilds and nothing
else does. A cold build compiles several thousand packages, so progress is
reported every few seconds instead of leaving the user in silence.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parent
KWOK_MODULE_DIR = MODULE_DIR / "kwok"
GO_BUILD_FLAGS = ("-trimpath",)
LDFLAGS = ("-s", "-w")
# Upstream's release build (hack/lib/version.sh) stamps these; without them the API server's
# /version and `kubectl version` say v0.0.0-master.
VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
HEARTBEAT_SECONDS = 15.0
KWOK_STAGES_FILE = "kwok-stages.yaml"
# Stages kwokctl installs by default: nodes become Ready and keep a Lease; pods become
# Ready, complete, and are removed when deleted (kwok has no kubelet to do it).
KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Program:
    """One binary: its name, the Go module folder to build in, and its main package."""

    name: str
    module_dir: Path
    package: str
    stamps_kubernetes_version: bool = True


# kube-apiserver first: it is the largest and the others reuse most of its compiled packages.
PROGRAMS: tuple[Program, ...] = (
    Program("kube-apiserver", MODULE_DIR, "k8s.io/kubernetes/cmd/kube-apiserver"),
    Program("kube-controller-manager", MODULE_DIR, "k8s.io/kubernetes/cmd/kube-controller-manager"),
    Program("kube-scheduler", MODULE_DIR, "k8s.io/kubernetes/cmd/kube-scheduler"),
    Program("kubectl", MODULE_DIR, "k8s.io/kubernetes/cmd/kubectl"),
    Program("etcd", MODULE_DIR, "go.etcd.io/etcd/server/v3", stamps_kubernetes_version=False),
    Program("kwok", KWOK_MODULE_DIR, "sigs.k8s.io/kwok/cmd/kwok", stamps_kubernetes_version=False),
)


class BuildError(RuntimeError):
    """A Go build failed; the message carries the tail of the compiler output."""


def kubernetes_version(go_mod: Path = MODULE_DIR / "go.mod") -> str:
    """The k8s.io/kubernetes version pinned in go.mod, e.g. ``v1.36.3``."""
    match = re.search(r"^\s*k8s\.io/kubernetes\s+(v\S+)", go_mod.read_text(), re.MULTILINE)
    if not match:
        raise BuildError(f"{go_mod}: no k8s.io/kubernetes requirement found")
    return match.group(1)


def version_ldflags(version: str) -> list[str]:
    """``-X`` flags so the binaries report ``version`` (e.g. v1.36.3) like a release build."""
    major, minor = version.lstrip("v").split(".")[:2]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return [
        f"-X {pkg}.{name}={value}" for pkg in VERSION_PACKAGES for name, value in values.items()
    ]


def go_build_args(program: Program, version: str) -> list[str]:
    ldflags = [*LDFLAGS, *(version_ldflags(version) if program.stamps_kubernetes_version else [])]
    return [*GO_BUILD_FLAGS, f"-ldflags={' '.join(ldflags)}"]


def module_hash(module_dirs: tuple[Path, ...] = (MODULE_DIR, KWOK_MODULE_DIR)) -> str:
    """Short hash of every go.mod/go.sum plus the build flags: changes to any of them rebuild."""
    digest = hashlib.sha256()
    for program in PROGRAMS:
        digest.update(" ".join(go_build_args(program, "vX.Y.Z")).encode())
    for module_dir in module_dirs:
        for name in ("go.mod", "go.sum"):
            digest.update(name.encode())
            digest.update((module_dir / name).read_bytes())
    return digest.hexdigest()[:12]


def cache_root() -> Path:
    """``$COFFEE_K8S_CACHE``, else ``$XDG_CACHE_HOME/coffee-operator`` (``~/.cache/...``)."""
    if explicit := os.environ.get("COFFEE_K8S_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coffee-operator"


def binaries_dir() -> Path:
    return cache_root() / f"k8s-{kubernetes_version()}-{module_hash()}"


def _missing(bin_dir: Path) -> list[Program]:
    return [p for p in PROGRAMS if not os.access(bin_dir / p.name, os.X_OK)]


def _is_complete(bin_dir: Path) -> bool:
    return not _missing(bin_dir) and (bin_dir / KWOK_STAGES_FILE).is_file()


@contextmanager
def _build_lock(bin_dir: Path, progress: Progress) -> Iterator[None]:
    """Serialise builds: several pytest sessions may start on a cold machine at once."""
    bin_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(bin_dir.parent / f"{bin_dir.name}.lock", "w") as lock:
        started, next_report = time.monotonic(), 0.0
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= next_report:
                    next_report += HEARTBEAT_SECONDS
                    progress(
                        f">> another process is building the control plane into {bin_dir};"
                        f" waiting for it ({waited:.0f}s)"
                    )
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _go_env() -> dict[str, str]:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "`go` is not on PATH: install Go 1.26 (scripts/system-deps.sh does) "
            "to build the control plane"
        )
    env = dict(os.environ, CGO_ENABLED="0")
    version = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=True
    ).stdout.strip()
    match = re.match(r"go1\.(\d+)", version)
    # Go 1.27+ turns the jsonv2 experiment on by default, which breaks kube-apiserver's
    # /openapi/v2 (and so `kubectl apply`); Kubernetes 1.36 is built and tested with 1.26.
    if match and int(match.group(1)) >= 27:
        env["GOEXPERIMENT"] = ",".join(filter(None, [env.get("GOEXPERIMENT", ""), "nojsonv2"]))
    return env


def _build_one(program: Program, bin_dir: Path, env: dict[str, str], progress: Progress) -> float:
    """Build one program with ``go build -v``, reporting how many packages were compiled so far."""
    target = bin_dir / program.name
    partial = bin_dir / f".{program.name}.partial"
    build_args = go_build_args(program, kubernetes_version())
    cmd = ["go", "build", *build_args, "-v", "-o", str(partial), program.package]
    started = time.monotonic()
    progress(f">> building {program.name} ({program.package})")
    proc = subprocess.Popen(
        cmd,
        cwd=program.module_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tail: collections.deque[str] = collections.deque(maxlen=60)
    compiled = 0

    def reader() -> None:
        nonlocal compiled
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            compiled += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    while True:
        try:
            proc.wait(timeout=HEARTBEAT_SECONDS)
            break
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - started
            progress(f"   {program.name}: {elapsed:4.0f}s, {compiled} packages compiled so far")
    thread.join()
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(
            f"building {program.name} failed (exit {proc.returncode}): "
            f"{' '.join(cmd)} in {program.module_dir}\n" + "\n".join(tail)
        )
    os.replace(partial, target)
    progress(f"   {program.name}: done in {elapsed:.0f}s ({compiled} packages compiled)")
    return elapsed


def _write_kwok_stages(bin_dir: Path, env: dict[str, str]) -> None:
    """Copy kwok's default Stage objects (from the kwok module itself) next to the binary."""
    kwok_src = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"],
        cwd=KWOK_MODULE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    docs = [(Path(kwok_src) / rel).read_text().strip() for rel in KWOK_STAGE_FILES]
    partial = bin_dir / f".{KWOK_STAGES_FILE}.partial"
    partial.write_text("\n---\n".join(docs) + "\n")
    os.replace(partial, bin_dir / KWOK_STAGES_FILE)


def ensure_binaries(progress: Progress = lambda msg: print(msg, flush=True)) -> Path:
    """Return the folder holding the control-plane binaries, building the missing ones first."""
    bin_dir = binaries_dir()
    if _is_complete(bin_dir):
        return bin_dir
    with _build_lock(bin_dir, progress):
        if _is_complete(bin_dir):  # built by whoever held the lock before us
            return bin_dir
        bin_dir.mkdir(parents=True, exist_ok=True)
        env = _go_env()
        missing = _missing(bin_dir)
        progress(
            f">> building the Kubernetes {kubernetes_version()} control plane from Go modules"
            f" into {bin_dir}\n"
            f"   ({len(missing)} programs; a cold build on 2 cores takes a long while,"
            " later runs reuse the cache)"
        )
        started = time.monotonic()
        timings = {p.name: round(_build_one(p, bin_dir, env, progress), 1) for p in missing}
        _write_kwok_stages(bin_dir, env)
        total = time.monotonic() - started
        info_file = bin_dir / "build-info.json"
        info = json.loads(info_file.read_text()) if info_file.exists() else {}
        info.setdefault("builds", []).append(
            {
                "seconds": timings,
                "total_seconds": round(total, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        )
        info_file.write_text(json.dumps(info, indent=2) + "\n")
        progress(f">> control plane built in {total:.0f}s: {bin_dir}")
    return bin_dir
