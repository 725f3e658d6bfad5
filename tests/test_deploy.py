"""deploy/ against the real control plane: the install is accepted by the API server, the
operator's ServiceAccount can do exactly what the operator needs (and nothing more), and two
replicas running as that ServiceAccount with kopf peering have exactly one active and fail
over when it stops."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster.localcluster import LocalCluster
from tests.deploy_support import REPO, VENV_BIN, load_docs
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

NS = "coffee-operator"  # the cluster-wide install's namespace
NAMESPACED_NS = "coffee"  # deploy/namespaced/'s namespace
SA = f"system:serviceaccount:{NS}:coffee-operator"
NAMESPACED_SA = f"system:serviceaccount:{NAMESPACED_NS}:coffee-operator"
PEERING = "coffee-operator"
KOPF_CRDS = ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
# An RBAC denial in the operator's log ('User "system:serviceaccount:NS:NAME" cannot VERB ...'),
# or kopf degrading its cluster scanning for lack of permissions.
RBAC_DENIAL = re.compile(
    r'system:serviceaccount:[\w.-]+:[\w.-]+\\?"? cannot|Not enough permissions'
)
# What every authenticated identity may do anyway (system:basic-user and friends).
BASELINE_GROUPS = {"authorization.k8s.io", "authentication.k8s.io"}

# (apiGroup, resource, resourceName or "*", verb): the operator's calls, and kopf's.
NAMESPACED_RULES = {
    *{("coffee.example.com", "coffeeservers", "*", v) for v in ("get", "list", "watch", "patch")},
    ("coffee.example.com", "coffeeservers/status", "*", "patch"),
    *{("apps", "deployments", "*", v) for v in ("list", "watch", "create", "patch")},
    *{("", "services", "*", v) for v in ("list", "watch", "create", "patch", "delete")},
    ("", "events", "*", "create"),
}
CLUSTER_RULES = {
    *NAMESPACED_RULES,
    ("apiextensions.k8s.io", "customresourcedefinitions", "*", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "*", "watch"),
    ("kopf.dev", "clusterkopfpeerings", "*", "list"),
    ("kopf.dev", "clusterkopfpeerings", "*", "watch"),
    ("kopf.dev", "clusterkopfpeerings", "*", "create"),
    ("kopf.dev", "clusterkopfpeerings", PEERING, "get"),
    ("kopf.dev", "clusterkopfpeerings", PEERING, "patch"),
}
ROLE_RULES = {
    *NAMESPACED_RULES,
    ("kopf.dev", "kopfpeerings", "*", "list"),
    ("kopf.dev", "kopfpeerings", "*", "watch"),
    ("kopf.dev", "kopfpeerings", "*", "create"),
    ("kopf.dev", "kopfpeerings", PEERING, "get"),
    ("kopf.dev", "kopfpeerings", PEERING, "patch"),
}


def apply_kustomization(cluster: LocalCluster, root: str) -> subprocess.CompletedProcess[str]:
    """`kubectl apply -k ROOT`, exactly as the README says: one run must do it."""
    result = cluster.kubectl("apply", "-k", str(REPO / root), check=False)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def prerequisites(cluster: LocalCluster) -> LocalCluster:
    """What a server-side dry run cannot create for itself: CRDs and namespaces.

    (A dry run persists nothing, so objects in a namespace created by the same dry run, or
    of a kind whose CRD it creates, are rejected; a real apply creates them in order.)"""
    cluster.kubectl("apply", "-k", str(REPO / "crds"))
    cluster.kubectl(
        "apply",
        "-f", str(REPO / "deploy/common/kopf-peering-crds.yaml"),
        "-f", str(REPO / "deploy/namespace.yaml"),
        "-f", str(REPO / "deploy/namespaced/namespace.yaml"),
    )
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=120s", *[f"crd/{c}" for c in KOPF_CRDS],
        timeout=150,
    )
    return cluster


@pytest.mark.parametrize("root", ["deploy", "deploy/namespaced"])
def test_server_side_dry_run_accepts_the_install(prerequisites: LocalCluster, root: str) -> None:
    result = prerequisites.kubectl(
        "apply", "-k", str(REPO / root), "--dry-run=server", check=False
    )
    assert result.returncode == 0, result.stderr
    # No warnings either: the namespaces warn on anything below Pod Security "restricted".
    assert "Warning" not in result.stderr, result.stderr
    built = load_docs(prerequisites.kubectl("kustomize", str(REPO / root)).stdout)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(built), result.stdout
    assert all(line.endswith("(server dry run)") for line in lines), result.stdout


def test_dry_run_would_catch_a_weaker_pod(prerequisites: LocalCluster) -> None:
    """The no-warning check above can fail: a pod allowed to escalate privileges is flagged."""
    docs = load_docs(prerequisites.kubectl("kustomize", str(REPO / "deploy")).stdout)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    result = prerequisites.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(deployment), check=False
    )
    assert "would violate PodSecurity" in result.stderr, result.stderr


@pytest.fixture(scope="module")
def installed(prerequisites: LocalCluster) -> LocalCluster:
    """The cluster-wide install, applied for real (operator pods are simulated by kwok).

    The kopf CRDs are removed first, so this one apply creates them as on a fresh cluster."""
    prerequisites.kubectl(
        "delete", "crd", *KOPF_CRDS, "--ignore-not-found", "--wait=true", "--timeout=120s",
        timeout=150,
    )
    apply_kustomization(prerequisites, "deploy")
    return prerequisites


def rules_of(cluster: LocalCluster, user: str, namespace: str) -> set[tuple[str, str, str, str]]:
    """Everything `user` may do in `namespace` (SelfSubjectRulesReview, impersonated)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    result = cluster.kubectl(
        "create", "--validate=false", "-f", "-", "-o", "json", f"--as={user}",
        input=json.dumps(review),
    )
    status = json.loads(result.stdout)["status"]
    assert not status.get("incomplete"), status
    found = set()
    for rule in status["resourceRules"]:
        for group in rule.get("apiGroups", []):
            if group in BASELINE_GROUPS:
                continue
            for resource in rule["resources"]:
                for name in rule.get("resourceNames") or ["*"]:
                    for verb in rule["verbs"]:
                        found.add((group, resource, name, verb))
    return found


def can_i(cluster: LocalCluster, user: str, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, f"--as={user}", check=False)
    assert result.stdout.strip() in {"yes", "no"}, result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def test_operator_deployment_becomes_available(installed: LocalCluster) -> None:
    """Both replicas are admitted in a namespace that enforces Pod Security "restricted"."""
    installed.kubectl(
        "-n", NS, "rollout", "status", "deployment/coffee-operator", "--timeout=120s"
    )
    deployment = json.loads(
        installed.kubectl("-n", NS, "get", "deployment/coffee-operator", "-o", "json").stdout
    )
    assert deployment["status"]["availableReplicas"] == 2
    labels = json.loads(installed.kubectl("get", "namespace", NS, "-o", "json").stdout)
    assert labels["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("namespace", ["default", "shop-any-namespace"])
def test_cluster_wide_service_account_has_exactly_the_needed_rules(
    installed: LocalCluster, namespace: str
) -> None:
    assert rules_of(installed, SA, namespace) == CLUSTER_RULES


@pytest.mark.parametrize(
    "args",
    [
        ("patch", "coffeeservers.coffee.example.com", "--subresource=status", "-n", "shop"),
        ("watch", "coffeeservers.coffee.example.com", "--all-namespaces"),
        ("create", "deployments.apps", "-n", "shop"),
        ("patch", "deployments.apps", "-n", "shop"),
        ("delete", "services", "-n", "shop"),
        ("create", "events", "-n", "shop"),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", f"clusterkopfpeerings.kopf.dev/{PEERING}"),
        ("create", "clusterkopfpeerings.kopf.dev"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_service_account_can(installed: LocalCluster, args: tuple[str, ...]) -> None:
    assert can_i(installed, SA, *args)


@pytest.mark.parametrize(
    "args",
    [
        ("get", "secrets", "-n", "shop"),
        ("list", "secrets", "--all-namespaces"),
        ("get", "secrets", "-n", NS),
        ("delete", "namespaces"),
        ("create", "namespaces"),
        ("get", "configmaps", "-n", "shop"),
        ("create", "pods", "-n", "shop"),
        ("create", "pods/exec", "-n", "shop"),
        ("delete", "deployments.apps", "-n", "shop"),
        ("update", "deployments.apps", "-n", "shop"),
        ("create", "coffeeservers.coffee.example.com", "-n", "shop"),
        ("delete", "coffeeservers.coffee.example.com", "-n", "shop"),
        ("patch", "clusterkopfpeerings.kopf.dev/someone-else"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("impersonate", "serviceaccounts", "-n", "shop"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_service_account_cannot(installed: LocalCluster, args: tuple[str, ...]) -> None:
    assert not can_i(installed, SA, *args)


@pytest.fixture(scope="module")
def installed_namespaced(prerequisites: LocalCluster) -> LocalCluster:
    apply_kustomization(prerequisites, "deploy/namespaced")
    return prerequisites


def test_namespaced_variant_is_role_only(installed_namespaced: LocalCluster) -> None:
    cluster = installed_namespaced
    assert rules_of(cluster, NAMESPACED_SA, NAMESPACED_NS) == ROLE_RULES
    # Outside its namespace, and cluster-wide, it may do nothing at all.
    assert rules_of(cluster, NAMESPACED_SA, "default") == set()
    assert can_i(cluster, NAMESPACED_SA, "create", "deployments.apps", "-n", NAMESPACED_NS)
    assert not can_i(cluster, NAMESPACED_SA, "create", "deployments.apps", "-n", "default")
    crds = "customresourcedefinitions.apiextensions.k8s.io"
    assert not can_i(cluster, NAMESPACED_SA, "list", crds)
    assert not can_i(cluster, NAMESPACED_SA, "list", "namespaces")
    bindings = json.loads(
        cluster.kubectl("get", "clusterrolebindings", "-o", "json").stdout
    )["items"]
    assert not [
        b for b in bindings
        for s in b.get("subjects") or []
        if s.get("namespace") == NAMESPACED_NS and s.get("name") == "coffee-operator"
    ]


# --------------------------------------------------------------------------- the real operator


def service_account_kubeconfig(cluster: LocalCluster, directory: Path, namespace: str = NS) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount (a bound token)."""
    token = cluster.kubectl(
        "-n", namespace, "create", "token", "coffee-operator", "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    server = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": "coffee-operator", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "coffee-operator"}}],
        "current-context": "sa",
    }
    path = directory / f"sa-kubeconfig-{namespace}"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def run_init_container(
    cluster: LocalCluster, root: str, kubeconfig: Path, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """The operator pod's init container, as rendered by kustomize, run as the SA (kwok pods
    run no containers, so the test does what the kubelet would)."""
    docs = load_docs(cluster.kubectl("kustomize", str(REPO / root)).stdout)
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    env = {e["name"]: e["value"] for e in init["env"] if "value" in e}
    assert init["command"] == ["python", "-c"]
    return subprocess.run(
        [str(VENV_BIN / "python"), "-c", init["args"][0]],
        env={**os.environ, **env, **extra_env, "KUBECONFIG": str(kubeconfig)},
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def peering_object(installed: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    cluster = installed
    kubeconfig = service_account_kubeconfig(cluster, tmp_path_factory.mktemp("init"))
    cluster.kubectl("delete", f"clusterkopfpeering/{PEERING}", "--ignore-not-found")
    first = run_init_container(cluster, "deploy", kubeconfig)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"created ClusterKopfPeering {PEERING}"
    again = run_init_container(cluster, "deploy", kubeconfig)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"ClusterKopfPeering {PEERING} exists"
    cluster.kubectl("get", f"clusterkopfpeering/{PEERING}")
    return PEERING


class Replica:
    """One `coffee-operator run` with the Deployment's own arguments, as a given pod name."""

    def __init__(
        self,
        name: str,
        kubeconfig: Path,
        log_dir: Path,
        args: list[str] | None = None,
        pod_namespace: str = NS,
    ):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        if args is None:
            deployment = load_docs((REPO / "deploy/common/deployment.yaml").read_text())[0]
            args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        # Same args as in the cluster (the kubelet expands $(VAR)), except the liveness port:
        # several processes share one host here.
        self.args = [
            a.replace("$(POD_NAMESPACE)", pod_namespace)
            for a in args
            if not a.startswith("--liveness")
        ]
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "POD_NAME": name,
            "POD_NAMESPACE": pod_namespace,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("COFFEE_OPERATOR_PRIORITY", None)
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "coffee-operator"), *self.args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture
def replicas(
    installed: LocalCluster, peering_object: str, tmp_path: Path
) -> Iterator[tuple[Replica, Replica]]:
    # (The in-cluster replicas are kwok-simulated pods: no process runs, so they never join
    # the peering. These two real processes play the Deployment's two replicas.)
    kubeconfig = service_account_kubeconfig(installed, tmp_path)
    pair = (Replica("replica-a", kubeconfig, tmp_path), Replica("replica-b", kubeconfig, tmp_path))
    try:
        yield pair
    finally:
        for replica in pair:
            replica.stop()


def events_by_instance(cluster: LocalCluster, namespace: str, name: str) -> dict[str, set[str]]:
    """reportingInstance -> reasons of the Events posted on CoffeeServer `name`."""
    items = json.loads(
        cluster.kubectl(
            "-n", namespace, "get", "events", "-o", "json",
            "--field-selector", f"involvedObject.name={name},involvedObject.kind=CoffeeServer",
        ).stdout
    )["items"]
    out: dict[str, set[str]] = {}
    for event in items:
        out.setdefault(event.get("reportingInstance") or "", set()).add(event["reason"])
    return out


def ready_at(cluster: LocalCluster, namespace: str, name: str) -> Callable[[], bool]:
    def check() -> bool:
        result = cluster.kubectl("-n", namespace, "get", "coffeeserver", name, "-o", "json")
        cs = json.loads(result.stdout)
        status = cs.get("status") or {}
        return status.get("observedGeneration") == cs["metadata"]["generation"] and any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
        )

    return check


def peering_state(text: str) -> str:
    """'active' or 'paused' from kopf's peering log lines (mandatory peering starts paused)."""
    state = "paused"
    for line in text.splitlines():
        if "Resuming operations after the pause" in line:
            state = "active"
        elif "Pausing operations in favour of" in line or "Pausing all operators" in line:
            state = "paused"
    return state


def test_two_replicas_as_the_service_account_one_active_then_failover(
    installed: LocalCluster, replicas: tuple[Replica, Replica], namespace: str
) -> None:
    cluster = installed
    a, b = replicas
    priority = re.compile(r"peering 'coffee-operator' priority (\d+)")
    wait_for("both replicas to start", lambda: all(priority.search(r.text()) for r in replicas))
    prio = {r.name: int(priority.search(r.text()).group(1)) for r in replicas}  # type: ignore[union-attr]
    assert prio[a.name] != prio[b.name], "random priorities collided"
    # kopf's rule: the highest priority is active, every other replica pauses.
    active, standby = (a, b) if prio[a.name] > prio[b.name] else (b, a)

    def peers() -> int:
        peering = json.loads(
            cluster.kubectl("get", f"clusterkopfpeering/{PEERING}", "-o", "json").stdout
        )
        return len(peering.get("status") or {})

    wait_for("both replicas in the peering object", lambda: peers() == 2, 60)
    wait_for(
        f"{active.name} active and {standby.name} paused",
        lambda: peering_state(active.text()) == "active"
        and peering_state(standby.text()) == "paused",
        60,
    )

    example = load_docs((REPO / "deploy/examples/minimal.yaml").read_text())[0]
    name = example["metadata"]["name"]
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(example))
    wait_for(f"coffeeserver/{name} Ready", ready_at(cluster, namespace, name), 90)
    reporters = events_by_instance(cluster, namespace, name)
    assert set(reporters) == {active.name}, (reporters, prio, a.text(), b.text())
    assert "Created" in reporters[active.name]

    # The active replica stops cleanly: it withdraws from the peering and the standby
    # resumes at once, then handles the next change.
    active.stop()
    wait_for("the standby to resume", lambda: peering_state(standby.text()) == "active", 30)
    patch = {"spec": {"gunicorn": {"timeout": 45}}}
    cluster.kubectl(
        "-n", namespace, "patch", "coffeeserver", name, "--type=merge", "-p", json.dumps(patch)
    )
    wait_for(f"coffeeserver/{name} Ready at generation 2", ready_at(cluster, namespace, name), 90)
    env = cluster.kubectl(
        "-n", namespace, "get", "deployment", name, "-o",
        "jsonpath={.spec.template.spec.containers[0].env[?(@.name=='GUNICORN_TIMEOUT')].value}",
    ).stdout
    assert env == "45"
    assert standby.name in events_by_instance(cluster, namespace, name)

    # Running as the ServiceAccount, RBAC refused nothing: the permissions are sufficient.
    # (An RBAC denial reads 'User "system:serviceaccount:NS:NAME" cannot VERB resource';
    # kopf says "Not enough permissions" when it has to degrade its scanning.)
    for replica in replicas:
        text = replica.text()
        found = RBAC_DENIAL.search(text)
        assert not found, f"{replica.name}: RBAC denial: {found.group(0)!r}\n{text[-3000:]}"


def test_token_kubeconfig_really_is_the_service_account(
    installed: LocalCluster, tmp_path: Path
) -> None:
    """Guard for the test above: its kubeconfig is not an admin in disguise."""
    kubeconfig = service_account_kubeconfig(installed, tmp_path)
    env = {**installed.env, "KUBECONFIG": str(kubeconfig)}
    whoami = subprocess.run(
        [str(installed.bin_dir / "kubectl"), "auth", "whoami", "-o", "json"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == SA
    denied = subprocess.run(
        [str(installed.bin_dir / "kubectl"), "get", "secrets", "-n", NS],
        env=env, capture_output=True, text=True,
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()


def test_namespaced_install_runs_the_operator_with_its_role_only(
    installed_namespaced: LocalCluster, tmp_path: Path
) -> None:
    """deploy/namespaced/ end to end as its ServiceAccount: the init step creates the
    KopfPeering, the operator (the variant's own args) makes a CoffeeServer Ready, and
    nothing it does is refused although it holds no cluster-scoped permission."""
    cluster = installed_namespaced
    kubeconfig = service_account_kubeconfig(cluster, tmp_path, NAMESPACED_NS)
    cluster.kubectl("-n", NAMESPACED_NS, "delete", f"kopfpeering/{PEERING}", "--ignore-not-found")
    init = run_init_container(
        cluster, "deploy/namespaced", kubeconfig, PEERING_NAMESPACE=NAMESPACED_NS
    )
    assert init.returncode == 0, init.stderr
    assert init.stdout.strip() == f"created KopfPeering {PEERING}"

    docs = load_docs(cluster.kubectl("kustomize", str(REPO / "deploy/namespaced")).stdout)
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    replica = Replica(
        "namespaced-0", kubeconfig, tmp_path, args=pod["containers"][0]["args"],
        pod_namespace=NAMESPACED_NS,
    )
    example = load_docs((REPO / "deploy/examples/minimal.yaml").read_text())[0]
    name = example["metadata"]["name"]
    try:
        assert f"--namespace={NAMESPACED_NS}" in replica.args
        wait_for("the replica to be active", lambda: peering_state(replica.text()) == "active")
        cluster.kubectl("-n", NAMESPACED_NS, "apply", "-f", "-", input=json.dumps(example))
        wait_for(f"coffeeserver/{name} Ready", ready_at(cluster, NAMESPACED_NS, name), 90)
        assert set(events_by_instance(cluster, NAMESPACED_NS, name)) == {replica.name}
    finally:
        cluster.kubectl("-n", NAMESPACED_NS, "delete", "coffeeserver", name, "--ignore-not-found")
        replica.stop()
    text = replica.text()
    assert not RBAC_DENIAL.search(text), text[-3000:]
