"""`make demo` (scripts/demo.py) does what the README promises, driven against the session's
control plane through its KUBECONFIG path: CRD, operator, example, Ready with the computed
workers, the Deployment shown, everything removed again; and without confirmation it touches
nothing. (The no-KUBECONFIG path runs the same steps on a LocalCluster of its own.)"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.deploy_support import REPO

pytestmark = pytest.mark.cluster


def run_demo(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts/demo.py"), "--kubeconfig", str(cluster.kubeconfig),
         *args],
        env=cluster.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )


def namespace_phase(cluster: LocalCluster, name: str) -> str | None:
    result = cluster.kubectl("get", "namespace", name, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)["status"]["phase"]


def test_demo_against_a_cluster_reaches_ready_and_cleans_up(cluster: LocalCluster) -> None:
    ns = f"demo-{uuid.uuid4().hex[:6]}"
    result = run_demo(cluster, "--yes", "--namespace", ns, "--timeout", "120")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # It said what it would do to that cluster before doing it.
    assert out.index("It will:") < out.index("== 1/4")
    assert "coffeeserver/espresso is Ready" in out
    assert "coffeeserver.coffee.example.com/espresso condition met" in out
    # kubectl get coffeeservers: Workers 3 from the 1-CPU limit of the minimal example.
    header, row = next(
        (lines[i], lines[i + 1])
        for lines in [out.splitlines()]
        for i, line in enumerate(lines)
        if line.startswith("NAME") and "WORKERS" in line
    )
    columns = dict(zip(header.split(), row.split(), strict=False))
    assert (columns["NAME"], columns["WORKERS"], columns["SOURCE"]) == ("espresso", "3", "CPULimit")
    assert "deployment.apps/espresso   2/2" in out
    assert "GUNICORN_WORKERS=3" in out and "terminationGracePeriodSeconds=40" in out
    assert "operator stopped (exit code 0)" in out
    # Cleaned up: the namespace it created is gone or going.
    assert namespace_phase(cluster, ns) in {None, "Terminating"}


def test_demo_touches_nothing_without_confirmation(cluster: LocalCluster) -> None:
    ns = f"demo-{uuid.uuid4().hex[:6]}"
    result = run_demo(cluster, "--namespace", ns)
    assert result.returncode == 1
    assert "without confirmation" in result.stderr + result.stdout
    assert namespace_phase(cluster, ns) is None
