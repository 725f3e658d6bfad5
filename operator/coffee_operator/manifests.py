"""CoffeeServer -> the Deployment and Service the operator applies (plain dicts).

Pure and deterministic: the same CR always renders byte-identical objects, so
``coffee-operator render`` shows exactly what the operator applies and the
operator can compare rendered vs. live objects before deciding to write.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from . import API_VERSION, KIND, MANAGER
from .config import EffectiveConfig, effective_config, gunicorn_env
from .errors import SpecError
from .fingerprint import stamp
from .spec import CoffeeServerSpec, parse_spec

APP_NAME = "coffee-server"
CONTAINER = "app"
PORT_NAME = "http"
TMP_VOLUME = "tmp"
#: Fixed non-root identity: ``runAsNonRoot`` can only be verified by the kubelet for a
#: numeric user, so we set one instead of trusting the image's USER line.
RUN_AS_USER = 10001
REVISION_HISTORY_LIMIT = 5
PROGRESS_DEADLINE_SECONDS = 600
HEALTH_PATH = "/health"
READY_PATH = "/health/ready"

# A CoffeeServer's name becomes a Service name and a label value: DNS-1035 label.
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def selector_labels(name: str) -> dict[str, str]:
    """Labels fixed for the life of a CoffeeServer (a Deployment selector is immutable)."""
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": name}


def common_labels(name: str) -> dict[str, str]:
    return {
        **selector_labels(name),
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/part-of": "coffee-payments",
        "app.kubernetes.io/managed-by": MANAGER,
    }


def owner_reference(cr: Mapping[str, Any]) -> dict[str, Any]:
    meta = cr["metadata"]
    return {
        "apiVersion": cr.get("apiVersion", API_VERSION),
        "kind": cr.get("kind", KIND),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def check_metadata(cr: Mapping[str, Any]) -> tuple[str, str]:
    """Return (name, namespace); namespace defaults to ``default`` like kubectl does."""
    meta = cr.get("metadata")
    if not isinstance(meta, Mapping):
        raise SpecError("metadata", "is required (with at least metadata.name)")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("metadata.name", "is required")
    if len(name) > 63 or not _NAME_RE.match(name):
        raise SpecError(
            "metadata.name",
            f"{name!r} must be a DNS-1035 label (lowercase letters, digits and '-', starting "
            "with a letter, at most 63 characters): it names the Service and is a label value",
        )
    namespace = meta.get("namespace") or "default"
    if not isinstance(namespace, str) or len(namespace) > 63 or not _NAMESPACE_RE.match(namespace):
        raise SpecError("metadata.namespace", f"{namespace!r} is not a valid namespace name")
    return name, namespace


def _metadata(cr: Mapping[str, Any], name: str, namespace: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": common_labels(name)}
    if cr["metadata"].get("uid"):
        meta["ownerReferences"] = [owner_reference(cr)]
    return meta


def _http_probe(path: str, *, period: int, timeout: int, failures: int) -> dict[str, Any]:
    # Every field the API server would default is set, so rendered == stored.
    return {
        "httpGet": {"path": path, "port": PORT_NAME, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "successThreshold": 1,
        "failureThreshold": failures,
    }


def _container(spec: CoffeeServerSpec, cfg: EffectiveConfig) -> dict[str, Any]:
    container: dict[str, Any] = {"name": CONTAINER, "image": spec.image}
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    container["ports"] = [{"name": PORT_NAME, "containerPort": cfg.port, "protocol": "TCP"}]
    container["env"] = gunicorn_env(cfg) + [copy.deepcopy(dict(e)) for e in spec.env]
    if spec.env_from:
        container["envFrom"] = [copy.deepcopy(dict(e)) for e in spec.env_from]
    container["resources"] = {
        k: dict(v) for k, v in sorted((spec.resources or {}).items()) if v
    }
    # Startup: up to 5 minutes (the entrypoint runs migrations first); then liveness
    # takes over. Readiness checks the database so a pod without one gets no traffic.
    container["startupProbe"] = _http_probe(HEALTH_PATH, period=2, timeout=2, failures=150)
    container["livenessProbe"] = _http_probe(HEALTH_PATH, period=10, timeout=5, failures=3)
    container["readinessProbe"] = _http_probe(READY_PATH, period=5, timeout=3, failures=3)
    # Native sleep action (GA in Kubernetes 1.34, on by default since 1.30): works in
    # images without a shell or sleep binary.
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": cfg.pre_stop_seconds}}}
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    container["volumeMounts"] = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]
    return container


def deployment(
    cr: Mapping[str, Any], spec: CoffeeServerSpec, cfg: EffectiveConfig
) -> dict[str, Any]:
    name, namespace = check_metadata(cr)
    pod_spec: dict[str, Any] = {
        # The app never talks to the API server, and service-link env vars could collide
        # with ours (a Service called "gunicorn" would inject GUNICORN_PORT=tcp://...).
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": cfg.termination_grace_period_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, cfg)],
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {}}],
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(cr, name, namespace),
        "spec": {
            "replicas": cfg.replicas,
            "revisionHistoryLimit": REVISION_HISTORY_LIMIT,
            "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
            "selector": {"matchLabels": selector_labels(name)},
            # Surge one new pod, never take an available one away first.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": common_labels(name),
                    "annotations": {"kubectl.kubernetes.io/default-container": CONTAINER},
                },
                "spec": pod_spec,
            },
        },
    }


def service(cr: Mapping[str, Any], spec: CoffeeServerSpec) -> dict[str, Any]:
    name, namespace = check_metadata(cr)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(cr, name, namespace),
        "spec": {
            "type": spec.service.type,
            "selector": selector_labels(name),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": spec.service.port,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def render(cr: Mapping[str, Any]) -> tuple[EffectiveConfig, list[dict[str, Any]]]:
    """Like :func:`render_objects` but also returns the effective config (for status)."""
    if not isinstance(cr, Mapping):
        raise SpecError("(document)", "a CoffeeServer must be a YAML/JSON object")
    check_metadata(cr)
    spec = parse_spec(cr.get("spec"))
    cfg = effective_config(spec)
    objects = [deployment(cr, spec, cfg)]
    if spec.service.enabled:
        objects.append(service(cr, spec))
    # The fingerprint is part of what is applied, so `render` prints it too.
    return cfg, [stamp(obj) for obj in objects]


def render_objects(cr: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The full CoffeeServer object in, [Deployment, Service (if enabled)] out.

    Owner references are added only when ``metadata.uid`` is set (a live object);
    a CR read from a file has no uid yet. Raises :class:`SpecError`.
    """
    return render(cr)[1]
