"""SPEC section 4: the Deployment and Service, checked field by field and against the
official Kubernetes schema (kubernetes-validate, strict: unknown fields are errors)."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml
from coffee_operator.errors import SpecError
from coffee_operator.manifests import render, render_objects

from .helpers import FULL_SPEC, K8S_VERSION, make_cr

EXAMPLES = {
    "minimal": make_cr(),
    "full": make_cr(FULL_SPEC),
    "no-service": make_cr({"image": "x:1", "service": {"enabled": False}}),
    "zero-replicas": make_cr({"image": "x:1", "replicas": 0, "runMode": "development"}),
    "from-file": make_cr(FULL_SPEC, uid=None, namespace=None),
}


def deployment_of(cr: dict[str, Any]) -> dict[str, Any]:
    return render_objects(cr)[0]


def container_of(cr: dict[str, Any]) -> dict[str, Any]:
    containers = deployment_of(cr)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app"]
    return containers[0]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_rendered_object_is_valid_kubernetes(name: str) -> None:
    objects = render_objects(EXAMPLES[name])
    assert objects, "nothing rendered"
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_validation_can_fail() -> None:
    """Guard: the schema check above really rejects a broken Deployment."""
    broken = deployment_of(make_cr())
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_objects_kinds_names_and_owner() -> None:
    cr = make_cr(FULL_SPEC)
    deploy, svc = render_objects(cr)
    assert (deploy["apiVersion"], deploy["kind"]) == ("apps/v1", "Deployment")
    assert (svc["apiVersion"], svc["kind"]) == ("v1", "Service")
    for obj in (deploy, svc):
        meta = obj["metadata"]
        assert (meta["name"], meta["namespace"]) == ("shop", "cafe")
        assert meta["ownerReferences"] == [{
            "apiVersion": "coffee.example.com/v1alpha1",
            "kind": "CoffeeServer",
            "name": "shop",
            "uid": cr["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }]
        assert meta["labels"] == {
            "app.kubernetes.io/name": "coffee-server",
            "app.kubernetes.io/instance": "shop",
            "app.kubernetes.io/component": "server",
            "app.kubernetes.io/part-of": "coffee-payments",
            "app.kubernetes.io/managed-by": "coffee-operator",
        }


def test_without_uid_no_owner_reference_and_default_namespace() -> None:
    for obj in render_objects(make_cr(uid=None, namespace=None)):
        assert "ownerReferences" not in obj["metadata"]
        assert obj["metadata"]["namespace"] == "default"


def test_selector_uses_only_stable_labels_and_matches_template() -> None:
    deploy = deployment_of(make_cr(FULL_SPEC))
    selector = deploy["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "coffee-server",
                        "app.kubernetes.io/instance": "shop"}
    template_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template_labels.items()
    # Changing anything in the spec must not change the (immutable) selector.
    other = deployment_of(make_cr({**FULL_SPEC, "image": "other:2", "replicas": 9}))
    assert other["spec"]["selector"] == deploy["spec"]["selector"]


def test_rolling_update_never_drops_below_desired() -> None:
    spec = deployment_of(make_cr(FULL_SPEC))["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert spec["revisionHistoryLimit"] == 5
    assert spec["progressDeadlineSeconds"] == 600


def test_container_env_has_effective_values_then_user_env() -> None:
    env = container_of(make_cr(FULL_SPEC))["env"]
    assert env == [
        {"name": "GUNICORN_WORKERS", "value": "4"},
        {"name": "GUNICORN_PORT", "value": "8080"},
        {"name": "GUNICORN_TIMEOUT", "value": "60"},
        {"name": "GUNICORN_GRACEFUL_TIMEOUT", "value": "20"},
        {"name": "GUNICORN_MAX_REQUESTS", "value": "1000"},
        {"name": "GUNICORN_MAX_REQUESTS_JITTER", "value": "100"},
        {"name": "RUN_MODE", "value": "production"},
        *FULL_SPEC["env"],
    ]


def test_default_env_values() -> None:
    env = {e["name"]: e["value"] for e in container_of(make_cr())["env"]}
    assert env == {
        "GUNICORN_WORKERS": "4", "GUNICORN_PORT": "8000", "GUNICORN_TIMEOUT": "30",
        "GUNICORN_GRACEFUL_TIMEOUT": "30", "GUNICORN_MAX_REQUESTS": "0",
        "GUNICORN_MAX_REQUESTS_JITTER": "0", "RUN_MODE": "production",
    }


def test_container_passes_through_image_resources_env_from_and_pull_secrets() -> None:
    deploy = deployment_of(make_cr(FULL_SPEC))
    pod = deploy["spec"]["template"]["spec"]
    app = pod["containers"][0]
    assert app["image"] == FULL_SPEC["image"]
    assert app["imagePullPolicy"] == "IfNotPresent"
    assert app["resources"] == FULL_SPEC["resources"]
    assert app["envFrom"] == FULL_SPEC["envFrom"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert app["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_minimal_container_has_no_optional_fields() -> None:
    app = container_of(make_cr())
    assert "imagePullPolicy" not in app and "envFrom" not in app
    assert app["resources"] == {}
    assert "imagePullSecrets" not in deployment_of(make_cr())["spec"]["template"]["spec"]


def test_probes() -> None:
    app = container_of(make_cr())
    assert app["startupProbe"]["httpGet"] == {"path": "/health", "port": "http", "scheme": "HTTP"}
    assert app["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http", "scheme": "HTTP"}
    assert app["readinessProbe"]["httpGet"] == {
        "path": "/health/ready", "port": "http", "scheme": "HTTP",
    }
    startup = app["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # room for migrations


def test_prestop_and_grace_period() -> None:
    deploy = deployment_of(make_cr(FULL_SPEC))
    pod = deploy["spec"]["template"]["spec"]
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert pod["terminationGracePeriodSeconds"] == 45
    default = deployment_of(make_cr())["spec"]["template"]["spec"]
    assert default["terminationGracePeriodSeconds"] == 40  # 30 + 5 preStop + 5 margin


def test_restricted_security_context_with_writable_tmp() -> None:
    pod = deployment_of(make_cr())["spec"]["template"]["spec"]
    app = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = app["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert app["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False


def test_service_shape() -> None:
    svc = render_objects(make_cr(FULL_SPEC))[1]
    assert svc["spec"] == {
        "type": "LoadBalancer",
        "selector": {"app.kubernetes.io/name": "coffee-server",
                     "app.kubernetes.io/instance": "shop"},
        "ports": [{"name": "http", "port": 443, "targetPort": "http", "protocol": "TCP"}],
    }
    default = render_objects(make_cr())[1]["spec"]
    assert (default["type"], default["ports"][0]["port"]) == ("ClusterIP", 80)


def test_service_disabled_renders_only_the_deployment() -> None:
    assert [o["kind"] for o in render_objects(EXAMPLES["no-service"])] == ["Deployment"]


def test_render_is_deterministic_and_does_not_touch_its_input() -> None:
    cr = make_cr(FULL_SPEC)
    before = copy.deepcopy(cr)
    first = yaml.safe_dump_all(render_objects(cr), sort_keys=False)
    second = yaml.safe_dump_all(render_objects(copy.deepcopy(cr)), sort_keys=False)
    assert first == second
    assert cr == before
    objects = render_objects(cr)
    objects[0]["spec"]["template"]["spec"]["containers"][0]["env"].clear()
    objects[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "9"
    assert yaml.safe_dump_all(render_objects(cr), sort_keys=False) == first
    assert cr == before


def test_render_returns_the_config_used_for_the_objects() -> None:
    cfg, objects = render(make_cr(FULL_SPEC))
    pod = objects[0]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == cfg.termination_grace_period_seconds
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["GUNICORN_WORKERS"] == str(cfg.workers)


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({}, "metadata.name"),
        ({"name": "Shop"}, "metadata.name"),
        ({"name": "my.shop"}, "metadata.name"),
        ({"name": "1shop"}, "metadata.name"),
        ({"name": "s" * 64}, "metadata.name"),
        ({"name": "shop", "namespace": "Bad_NS"}, "metadata.namespace"),
    ],
)
def test_bad_metadata_names_the_field(metadata: dict[str, Any], field: str) -> None:
    cr = make_cr()
    cr["metadata"] = metadata
    with pytest.raises(SpecError) as err:
        render_objects(cr)
    assert err.value.field == field


def test_invalid_spec_raises_from_render_objects() -> None:
    with pytest.raises(SpecError) as err:
        render_objects(make_cr({"image": "x", "gunicorn": {"workers": 300}}))
    assert err.value.field == "spec.gunicorn.workers"


def test_longest_valid_name_renders_valid_objects() -> None:
    for obj in render_objects(make_cr(name="s" * 63)):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
