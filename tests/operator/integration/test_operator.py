"""The real operator process against the real control plane, driven with kubectl.

Every test uses its own namespace; the module shares one operator process and the
session's cluster. Pods are simulated by kwok, so Deployments really roll out and
become Available, and ``kubectl wait --for=condition=Ready`` really returns.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from coffee_operator.conditions import REASONS

from tests.support.waiting import wait_for

from .conftest import WATCH_TIMEOUT
from .support import OperatorProcess, delta, write_counts

pytestmark = pytest.mark.cluster

IMAGE = "registry.example.com/coffee-payments:1.0"
WAIT = "90s"


def coffee_server(namespace: str, name: str = "shop", **spec: Any) -> str:
    body = {
        "apiVersion": "coffee.example.com/v1alpha1",
        "kind": "CoffeeServer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": IMAGE, **spec},
    }
    return json.dumps(body)


class Api:
    """Reads through the admin connection (what kubectl get shows), writes through kubectl."""

    def __init__(self, cluster: Any, namespace: str) -> None:
        self.cluster = cluster
        self.ns = namespace

    def get(self, kind: str, name: str = "shop") -> dict[str, Any] | None:
        path = {
            "deployment": f"/apis/apps/v1/namespaces/{self.ns}/deployments/{name}",
            "service": f"/api/v1/namespaces/{self.ns}/services/{name}",
            "coffeeserver": f"/apis/coffee.example.com/v1alpha1/namespaces/{self.ns}"
                            f"/coffeeservers/{name}",
        }[kind]
        status, body = self.cluster.api_request(path)
        if status == 404:
            return None
        assert status == 200, body
        return body

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> Any:
        return self.cluster.kubectl("-n", self.ns, *args, input=input, check=check)

    def apply(self, manifest: str) -> Any:
        return self.kubectl("apply", "-f", "-", input=manifest)

    def patch(self, patch: Any, kind: str = "coffeeserver", name: str = "shop",
              patch_type: str = "merge") -> Any:
        return self.kubectl("patch", kind, name, "--type", patch_type, "-p", json.dumps(patch))

    def env(self, name: str = "shop") -> dict[str, str]:
        dep = self.get("deployment", name) or {}
        containers = dep.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        app = next((c for c in containers if c["name"] == "app"), {})
        return {e["name"]: e.get("value", "") for e in app.get("env", [])}

    def status(self, name: str = "shop") -> dict[str, Any]:
        return (self.get("coffeeserver", name) or {}).get("status") or {}

    def condition(self, ctype: str, name: str = "shop") -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == ctype), {})

    def events(self, reason: str | None = None, name: str = "shop") -> list[dict[str, Any]]:
        _, body = self.cluster.api_request(f"/api/v1/namespaces/{self.ns}/events")
        return [
            e for e in body.get("items", [])
            if e["involvedObject"].get("kind") == "CoffeeServer"
            and e["involvedObject"].get("name") == name
            and (reason is None or e.get("reason") == reason)
        ]

    def event_count(self, reason: str, name: str = "shop") -> int:
        return sum(int(e.get("count") or 1) for e in self.events(reason, name))

    def wait_ready(self, name: str = "shop", generation: int | None = None) -> dict[str, Any]:
        if generation is not None:
            self.kubectl("wait", f"--for=jsonpath={{.status.observedGeneration}}={generation}",
                         f"coffeeserver/{name}", f"--timeout={WAIT}")
        self.kubectl("wait", "--for=condition=Ready", f"coffeeserver/{name}", f"--timeout={WAIT}")
        return self.status(name)

    def create_ready(self, name: str = "shop", **spec: Any) -> dict[str, Any]:
        self.apply(coffee_server(self.ns, name, **spec))
        return self.wait_ready(name, generation=1)


@pytest.fixture
def api(cluster: Any, namespace: str, operator: OperatorProcess) -> Api:
    return Api(cluster, namespace)


def metrics_text(cluster: Any) -> str:
    status, text = cluster.api_request("/metrics")
    assert status == 200
    return text


def test_idle_operator_writes_nothing(api: Api, cluster: Any, operator: OperatorProcess) -> None:
    """After converging, a resync period (several watch renewals) passes with zero writes."""
    api.create_ready()
    time.sleep(2)  # let the Deployment's last status updates reach the operator
    before = write_counts(lambda: metrics_text(cluster))
    time.sleep(2.5 * WATCH_TIMEOUT)
    after = write_counts(lambda: metrics_text(cluster))
    writes = delta(after, before)
    assert not writes, f"writes while idle (apiserver_request_total): {dict(writes)}"
    assert operator.alive()


def test_create_gives_deployment_service_and_ready(api: Api) -> None:
    api.apply(coffee_server(api.ns, resources={"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}},
                            gunicorn={"timeout": 45}))
    dep = wait_for("the Deployment", lambda: api.get("deployment"), 30)
    svc = wait_for("the Service", lambda: api.get("service"), 30)
    cr = api.get("coffeeserver")
    assert cr is not None

    for child in (dep, svc):
        refs = child["metadata"]["ownerReferences"]
        assert refs == [{"apiVersion": "coffee.example.com/v1alpha1", "kind": "CoffeeServer",
                         "name": "shop", "uid": cr["metadata"]["uid"], "controller": True,
                         "blockOwnerDeletion": True}]
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "coffee-operator"
    pod = dep["spec"]["template"]["spec"]
    (app,) = pod["containers"]
    assert app["name"] == "app"
    env = api.env()
    assert env["GUNICORN_WORKERS"] == "3"  # limit 1 core -> 2*1+1
    assert env["GUNICORN_TIMEOUT"] == "45"
    assert env["GUNICORN_GRACEFUL_TIMEOUT"] == "45"
    assert pod["terminationGracePeriodSeconds"] > 45
    assert app["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert app["livenessProbe"]["httpGet"]["path"] == "/health"
    assert app["securityContext"]["allowPrivilegeEscalation"] is False
    assert svc["spec"]["ports"][0]["port"] == 80
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    # Only our field manager applied them, in one request each.
    managers = {m["manager"] for m in dep["metadata"]["managedFields"]
                if m["operation"] == "Apply"}
    assert managers == {"coffee-operator"}

    status = api.wait_ready(generation=1)
    assert status["workers"] == 3 and status["workersSource"] == "CPULimit"
    assert status["timeout"] == 45 and status["gracefulTimeout"] == 45
    assert status["terminationGracePeriodSeconds"] == pod["terminationGracePeriodSeconds"]
    assert status["replicas"] == status["readyReplicas"] == status["availableReplicas"] == 2
    assert status["updatedReplicas"] == 2
    for cond in status["conditions"]:
        assert {"type", "status", "reason", "message", "observedGeneration",
                "lastTransitionTime"} <= set(cond)
        assert cond["observedGeneration"] == 1
        assert cond["reason"] in REASONS
    assert api.condition("Progressing")["status"] == "False"
    assert api.condition("Degraded")["status"] == "False"
    (created,) = api.events("Created")  # one Event for both children
    assert created["message"] == "Created Deployment shop, Service shop"
    wait_for("a RolloutComplete event", lambda: api.event_count("RolloutComplete") == 1, 10)
    printed = api.kubectl("get", "coffeeserver", "shop").stdout
    assert "3" in printed.splitlines()[1]  # printer columns show the workers


def test_timeout_change_rolls_out_and_is_ready_at_the_new_generation(api: Api) -> None:
    api.create_ready()
    first_transition = api.condition("Ready")["lastTransitionTime"]
    api.patch({"spec": {"gunicorn": {"timeout": 60}}})
    wait_for("GUNICORN_TIMEOUT=60", lambda: api.env().get("GUNICORN_TIMEOUT") == "60", 30)
    status = api.wait_ready(generation=2)
    assert status["timeout"] == 60 and status["gracefulTimeout"] == 60
    ready = api.condition("Ready")
    assert ready["observedGeneration"] == 2
    dep = api.get("deployment")
    assert dep is not None
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert dep["status"]["updatedReplicas"] == dep["status"]["availableReplicas"] == 2
    assert api.event_count("Updated") == 1
    # Ready went False during the rollout and True again: a new transition time.
    assert ready["lastTransitionTime"] >= first_transition


def test_cpu_changes_recompute_workers(api: Api) -> None:
    api.create_ready(resources={"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}})
    assert api.status()["workers"] == 3

    api.patch({"spec": {"resources": {"limits": {"cpu": "2"}}}})
    status = api.wait_ready(generation=2)
    assert (status["workers"], status["workersSource"]) == (5, "CPULimit")
    assert api.env()["GUNICORN_WORKERS"] == "5"

    # Removing the limit falls back to the request: 500m -> 2 workers. The Deployment
    # must lose its limit too (a removed field, not only a changed one).
    api.patch([{"op": "remove", "path": "/spec/resources/limits"}], patch_type="json")
    status = api.wait_ready(generation=3)
    assert (status["workers"], status["workersSource"]) == (2, "CPURequest")
    assert api.env()["GUNICORN_WORKERS"] == "2"
    dep = api.get("deployment")
    assert dep is not None
    resources = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert "limits" not in resources, resources


def test_hand_edited_env_is_put_back_with_one_drift_event(api: Api) -> None:
    api.create_ready()
    before = api.get("deployment")
    assert before is not None
    api.kubectl("set", "env", "deployment/shop", "GUNICORN_TIMEOUT=99")
    wait_for("GUNICORN_TIMEOUT put back", lambda: api.env().get("GUNICORN_TIMEOUT") == "30", 30)
    api.wait_ready()
    # The controller-manager keeps updating the Deployment's status for a while, each
    # update echoing whatever template it saw: none of them may cause another correction.
    time.sleep(3)
    assert api.event_count("DriftCorrected") == 1, api.events("DriftCorrected")
    (event,) = api.events("DriftCorrected")
    assert "GUNICORN_TIMEOUT" in event["message"]
    assert api.env()["GUNICORN_TIMEOUT"] == "30"


def test_deleted_children_are_recreated(api: Api) -> None:
    api.create_ready()
    dep, svc = api.get("deployment"), api.get("service")
    assert dep is not None and svc is not None
    api.kubectl("delete", "deployment", "shop", "--wait=false")
    api.kubectl("delete", "service", "shop", "--wait=false")
    def uid(kind: str) -> str | None:
        return (api.get(kind) or {}).get("metadata", {}).get("uid")

    wait_for("a new Deployment", lambda: uid("deployment") not in (None, dep["metadata"]["uid"]),
             30)
    wait_for("a new Service", lambda: uid("service") not in (None, svc["metadata"]["uid"]), 30)
    api.wait_ready()


def test_schema_invalid_coffee_server_is_rejected_by_the_api_server(api: Api) -> None:
    result = api.kubectl("apply", "-f", "-", input=coffee_server(api.ns, gunicorn={"workers": 0}),
                         check=False)
    assert result.returncode != 0
    assert "spec.gunicorn.workers" in result.stderr
    assert api.get("coffeeserver") is None


#: Specs that pass the CRD schema (types, bounds, CEL) but that the operator must refuse,
#: with the field the message must name. The first one the API server accepts is used, so
#: the test keeps working if the schema learns to catch some of them.
OPERATOR_INVALID = [
    ({"resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}},
     "spec.resources.requests.cpu"),
    ({"resources": {"limits": {"cpu": "-1"}}}, "spec.resources.limits.cpu"),
]


def schema_accepted(api: Api, spec: dict[str, Any]) -> bool:
    result = api.kubectl("apply", "--dry-run=server", "-f", "-",
                         input=coffee_server(api.ns, "probe", **spec), check=False)
    return result.returncode == 0


def test_operator_invalid_spec_degrades_leaves_deployment_alone_and_recovers(
    api: Api, operator: OperatorProcess,
) -> None:
    candidates = [(spec, f) for spec, f in OPERATOR_INVALID if schema_accepted(api, spec)]
    assert candidates, "the CRD schema now rejects every operator-invalid example; add one"
    invalid, field = candidates[0]
    api.create_ready()
    before = api.get("deployment")
    assert before is not None
    api.patch({"spec": invalid})
    wait_for("Degraded=True", lambda: api.condition("Degraded").get("status") == "True", 30)
    degraded = api.condition("Degraded")
    assert degraded["reason"] == "InvalidSpec"
    assert field in degraded["message"]
    assert degraded["observedGeneration"] == 2
    assert api.condition("Ready")["status"] == "False"
    assert api.status()["observedGeneration"] == 2
    wait_for("an InvalidSpec warning event", lambda: api.event_count("InvalidSpec") == 1, 10)
    after = api.get("deployment")
    assert after is not None
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert operator.alive()

    api.patch([{"op": "remove", "path": "/spec/resources"}], patch_type="json")
    api.wait_ready(generation=3)
    assert api.condition("Degraded")["status"] == "False"
    assert api.condition("Degraded")["observedGeneration"] == 3


def test_disabling_the_service_deletes_it(api: Api) -> None:
    api.create_ready()
    api.patch({"spec": {"service": {"enabled": False}}})
    wait_for("the Service to be deleted", lambda: api.get("service") is None, 30)
    api.wait_ready(generation=2)
    assert api.event_count("Deleted") == 1


def test_deleting_the_coffee_server_garbage_collects_children(api: Api) -> None:
    api.create_ready()
    api.kubectl("delete", "coffeeserver", "shop", "--wait=true", "--timeout=60s")
    wait_for("the garbage collector to delete the Deployment and Service",
             lambda: api.get("deployment") is None and api.get("service") is None, 60)


def test_deleting_the_namespace_costs_no_doomed_recreates(api: Api, cluster: Any) -> None:
    """Deleting a namespace deletes its children before its CoffeeServers; each deletion
    wakes a reconcile whose re-create the API server refuses ("being terminated"). After
    the first refusal the operator stops trying there (coffee_operator.terminating)."""
    count = 12
    for i in range(count):
        api.apply(coffee_server(api.ns, f"shop-{i}"))
    # Children present is all this needs (Ready would also wait for kwok's pods).
    wait_for("every CoffeeServer's Deployment and Service", lambda: all(
        api.get("deployment", f"shop-{i}") and api.get("service", f"shop-{i}")
        for i in range(count)), 60)
    children = {("apps", "deployments", ""), ("", "services", "")}
    before = write_counts(lambda: metrics_text(cluster))
    cluster.kubectl("delete", "namespace", api.ns, "--wait=true", "--timeout=90s")
    time.sleep(1)  # reconciles woken by the last deletions
    applies = delta(write_counts(lambda: metrics_text(cluster)), before, children)
    attempts = sum(n for (verb, *_), n in applies.items() if verb == "APPLY")
    # Measured without the mark: 22 refused creates for 12 CoffeeServers. With it, only the
    # reconciles already sent before the first refusal came back (4 here).
    assert attempts < count, f"create attempts in the terminating namespace: {dict(applies)}"


def deny_deployments_policy(namespace: str) -> str:
    """A ValidatingAdmissionPolicy (+ binding) refusing every Deployment write in one
    namespace: a real API failure for the operator's child writes."""
    name = f"freeze-{namespace}"
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": ["apps"], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
                "validations": [{"expression": "false",
                                 "message": "deployments are frozen here (test policy)"}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": namespace}}},
            },
        },
    ]})


def test_failing_child_writes_still_report_status_degrade_and_recover(api: Api) -> None:
    policy = deny_deployments_policy(api.ns)
    api.cluster.kubectl("apply", "-f", "-", input=policy)
    try:
        probe = json.dumps({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "probe", "namespace": api.ns},
                            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                                "metadata": {"labels": {"a": "b"}},
                                "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
        wait_for("the policy to apply",
                 lambda: api.kubectl("apply", "--dry-run=server", "-f", "-", input=probe,
                                     check=False).returncode != 0, 30)
        api.apply(coffee_server(api.ns))
        wait_for("Degraded after repeated failures",
                 lambda: api.condition("Degraded").get("status") == "True", 60)
        degraded = api.condition("Degraded")
        assert degraded["reason"] == "ReconcileFailed"
        assert "frozen" in degraded["message"]
        status = api.status()
        assert status["observedGeneration"] == 1  # status written although the child failed
        assert status["workers"] == 4
        assert api.condition("Ready")["status"] == "False"
        assert api.get("deployment") is None
        assert api.get("service") is not None  # the other child is not held back
        assert api.event_count("ReconcileFailed") >= 1
    finally:
        api.cluster.kubectl("delete", "-f", "-", input=policy, check=False)
    # Retries with backoff pick it up once the API accepts the write again.
    api.wait_ready()
    assert api.condition("Degraded")["status"] == "False"
