"""The local control plane behaves like a real cluster where the operator depends on it.

These are the behaviours the kmock emulator got wrong: CRD schemas enforced by
the API server, controllers turning a Deployment into Available pods, owner
references garbage-collected, RBAC enforced. They also guard the harness:
stopping it (or killing `make cluster` with a signal) leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cluster.build import binaries_dir, kubernetes_version
from tests.cluster.localcluster import CRDS_DIR, REPO_ROOT, LocalCluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

COFFEE_CRD = "coffeeservers.coffee.example.com"


def get_json(cluster: LocalCluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", "-o", "json", *args).stdout)


def deployment_manifest(name: str, replicas: int = 2) -> str:
    labels = {"app": name}
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "registry.example/coffee:1"}]},
                },
            },
        }
    )


def crd_names_in_repo() -> set[str]:
    names = set()
    for path in sorted(CRDS_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                names.add(doc["metadata"]["name"])
    return names


def test_server_and_kubectl_are_the_pinned_release(cluster: LocalCluster) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)

    assert versions["serverVersion"]["gitVersion"] == kubernetes_version()
    assert versions["clientVersion"]["gitVersion"] == kubernetes_version()


def test_crds_apply_and_become_established(cluster: LocalCluster) -> None:
    expected = crd_names_in_repo()
    assert COFFEE_CRD in expected

    result = cluster.kubectl("apply", "-f", str(CRDS_DIR))

    assert COFFEE_CRD in result.stdout
    for name in expected:
        conditions = get_json(cluster, "crd", name)["status"]["conditions"]
        established = {c["type"]: c["status"] for c in conditions}.get("Established")
        assert established == "True", f"{name}: {conditions}"
    listed = cluster.kubectl("get", "coffeeservers", "--all-namespaces")
    assert listed.returncode == 0


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"image": "registry.example/coffee:1", "replicas": -1}, "spec.replicas"),
        ({"replicas": 1}, "spec.image"),
    ],
    ids=["negative-replicas", "missing-image"],
)
def test_schema_invalid_coffeeserver_is_rejected_naming_the_field(
    cluster: LocalCluster, namespace: str, spec: dict, field: str
) -> None:
    manifest = {
        "apiVersion": "coffee.example.com/v1alpha1",
        "kind": "CoffeeServer",
        "metadata": {"name": "invalid", "namespace": namespace},
        "spec": spec,
    }

    result = cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)

    assert result.returncode != 0
    assert "is invalid" in result.stderr, result.stderr
    assert field in result.stderr, result.stderr
    absent = cluster.kubectl("get", "coffeeserver", "invalid", "-n", namespace, check=False)
    assert "NotFound" in absent.stderr


def test_deployment_gets_replicaset_and_scheduled_running_pods_and_becomes_available(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=deployment_manifest("web", 3))

    cluster.kubectl(
        "wait", "-n", namespace, "deployment/web", "--for=condition=Available", "--timeout=90s"
    )

    deployment = get_json(cluster, "-n", namespace, "deployment", "web")
    assert deployment["status"]["availableReplicas"] == 3
    replicasets = get_json(cluster, "-n", namespace, "replicasets", "-l", "app=web")["items"]
    assert len(replicasets) == 1
    assert replicasets[0]["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
    pods = get_json(cluster, "-n", namespace, "pods", "-l", "app=web")["items"]
    assert len(pods) == 3
    for pod in pods:
        assert pod["spec"]["nodeName"] == cluster.node_name
        assert pod["status"]["phase"] == "Running"
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"]
        assert ready == "True"
        assert pod["metadata"]["ownerReferences"][0]["uid"] == replicasets[0]["metadata"]["uid"]


def test_deleting_an_owner_garbage_collects_its_dependents(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=deployment_manifest("gc", 2))
    cluster.kubectl(
        "wait", "-n", namespace, "deployment/gc", "--for=condition=Available", "--timeout=90s"
    )
    # A dependent the test owns directly: a ConfigMap owned by the Deployment.
    owner_uid = get_json(cluster, "-n", namespace, "deployment", "gc")["metadata"]["uid"]
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "gc-config",
            "labels": {"app": "gc"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gc", "uid": owner_uid}
            ],
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(owned))

    cluster.kubectl("delete", "-n", namespace, "deployment", "gc", "--wait=false")

    def dependents() -> int:
        items = 0
        for kind in ("replicasets", "pods", "configmaps"):
            items += len(get_json(cluster, "-n", namespace, kind, "-l", "app=gc")["items"])
        return items

    wait_for(
        "the ReplicaSet, pods and ConfigMap of deleted deployment/gc to go",
        lambda: dependents() == 0,
    )


def test_rbac_is_enforced(cluster: LocalCluster, namespace: str) -> None:
    service_account = f"system:serviceaccount:{namespace}:default"

    denied = cluster.kubectl(
        "auth", "can-i", "create", "pods", "-n", namespace, f"--as={service_account}", check=False
    )
    allowed = cluster.kubectl("auth", "can-i", "create", "pods", "-n", namespace)

    assert denied.stdout.strip() == "no"
    assert allowed.stdout.strip() == "yes"


def test_service_range_fits_thousands_of_services(cluster: LocalCluster) -> None:
    cidrs = cluster.kubectl("get", "servicecidr", "kubernetes", "-o", "jsonpath={.spec.cidrs[0]}")
    prefix = int(cidrs.stdout.split("/")[1])
    assert 32 - prefix >= 12, f"service CIDR {cidrs.stdout} holds fewer than 4096 addresses"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The ppid is the second field after the parenthesised command name.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_make_cluster_stops_every_process_on_signal(sig: signal.Signals) -> None:
    """`make cluster` runs this command; a signal must take the whole control plane down."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster.localcluster", "up", "--no-crds"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        output = []
        for line in proc.stdout:
            output.append(line)
            if line.startswith("export KUBECONFIG="):
                break
        else:
            pytest.fail("cluster did not come up:\n" + "".join(output))
        kubeconfig = line.strip().split("=", 1)[1]
        children = _children(proc.pid)
        assert len(children) == 5, children  # etcd, apiserver, controller-manager, scheduler, kwok
        nodes = subprocess.run(
            [
                str(binaries_dir() / "kubectl"),
                "--kubeconfig",
                kubeconfig,
                "get",
                "nodes",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert nodes.stdout.strip() == "node/kwok-node-0"

        os.kill(proc.pid, sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == 0, "".join(output) + rest
    assert "stopped" in rest
    assert [pid for pid in children if _alive(pid)] == []
    assert not Path(kubeconfig).exists(), "the run dir should be removed on stop"
