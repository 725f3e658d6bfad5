"""Helpers shared by the operator's integration tests and benchmarks (bench/operator_*.py).

- :class:`OperatorProcess`: the real ``.venv/bin/coffee-operator run`` as a child process,
  with its log in a file, stopped with SIGTERM (its exit code is checked).
- :func:`write_counts`: API writes as counted by the kube-apiserver itself
  (``apiserver_request_total`` from ``/metrics``), never by the operator's own bookkeeping.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[3]
OPERATOR_BIN = REPO_ROOT / ".venv" / "bin" / "coffee-operator"

#: Verbs of apiserver_request_total that change something (APPLY = server-side apply PATCH).
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
#: (group, resource, subresource) the operator writes to.
OPERATOR_RESOURCES = frozenset({
    ("apps", "deployments", ""),
    ("", "services", ""),
    ("coffee.example.com", "coffeeservers", ""),
    ("coffee.example.com", "coffeeservers", "status"),
    ("", "events", ""),
    ("events.k8s.io", "events", ""),
})

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.eE+]+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

WriteKey = tuple[str, str, str, str]  # (verb, group, resource, subresource)


def parse_write_counts(metrics_text: str) -> Counter[WriteKey]:
    """apiserver_request_total samples of write verbs, summed over codes/components."""
    counts: Counter[WriteKey] = Counter()
    for line in metrics_text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("verb") not in WRITE_VERBS or labels.get("dry_run"):
            continue
        key = (labels["verb"], labels.get("group", ""), labels.get("resource", ""),
               labels.get("subresource", ""))
        counts[key] += int(float(match["value"]))
    return counts


def write_counts(raw_metrics: Callable[[], str]) -> Counter[WriteKey]:
    """Current write counters; ``raw_metrics`` returns the text of GET /metrics."""
    return parse_write_counts(raw_metrics())


def delta(after: Counter[WriteKey], before: Counter[WriteKey],
          resources: Iterable[tuple[str, str, str]] = OPERATOR_RESOURCES) -> Counter[WriteKey]:
    """Writes between two snapshots, restricted to ``resources`` (group, resource, sub)."""
    wanted = set(resources)
    out: Counter[WriteKey] = Counter()
    for key, value in after.items():
        if key[1:] in wanted and value - before.get(key, 0) > 0:
            out[key] = value - before.get(key, 0)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """``coffee-operator run`` against a cluster, logging to a file.

    ``env`` must carry KUBECONFIG (``LocalCluster.env`` does). Extra CLI args via ``args``.
    """

    def __init__(self, env: Mapping[str, str], args: Iterable[str] = ("--all-namespaces",),
                 *, watch_timeout: float | None = None, log_dir: Path | None = None) -> None:
        self.port = free_port()
        self.args = [str(OPERATOR_BIN), "run", *args, "--standalone",
                     "--liveness", f"http://127.0.0.1:{self.port}/healthz"]
        self.env = dict(env)
        self.env["PYTHONUNBUFFERED"] = "1"
        if watch_timeout:
            self.env["COFFEE_OPERATOR_WATCH_TIMEOUT"] = str(watch_timeout)
        self.log_path = Path(tempfile.mkstemp(prefix="coffee-operator-", suffix=".log",
                                              dir=log_dir)[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=REPO_ROOT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(f"operator exited with {code}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"operator not live after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait (kopf shuts down gracefully); SIGKILL only if it hangs."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.returncode = -9
                return -9
        self.returncode = self.proc.returncode
        return self.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peak_rss_mb(self) -> float:
        """VmHWM (peak resident set size) of the operator process, from /proc."""
        text = Path(f"/proc/{self.pid}/status").read_text()
        kb = int(re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)[1])  # type: ignore[index]
        return kb / 1024

    def rss_mb(self) -> float:
        text = Path(f"/proc/{self.pid}/status").read_text()
        kb = int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)[1])  # type: ignore[index]
        return kb / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time the operator process has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        if exc is not None:
            print(f"--- operator log tail ({self.log_path}) ---\n{self.log_tail()}",
                  file=sys.stderr)

