"""Builders shared by the operator unit tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
CRD_PATH = REPO / "crds" / "coffeeserver.yaml"
COFFEE_OPERATOR = REPO / ".venv" / "bin" / "coffee-operator"
#: The control plane the cluster harness builds is Kubernetes 1.36.
K8S_VERSION = "1.36.0"


def make_cr(
    spec: dict[str, Any] | None = None,
    *,
    name: str = "shop",
    namespace: str | None = "cafe",
    uid: str | None = "5f0c7c4e-1d0b-4a4e-9d6e-3c2b1a000001",
) -> dict[str, Any]:
    """A CoffeeServer as the operator receives it (with a uid) or as written in a file."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if uid is not None:
        metadata["uid"] = uid
    return {
        "apiVersion": "coffee.example.com/v1alpha1",
        "kind": "CoffeeServer",
        "metadata": metadata,
        "spec": copy.deepcopy(spec) if spec is not None else {"image": "coffee/app:1.0"},
    }


FULL_SPEC: dict[str, Any] = {
    "image": "registry.example.com/coffee/app:1.4.2",
    "imagePullPolicy": "IfNotPresent",
    "imagePullSecrets": [{"name": "regcred"}],
    "replicas": 3,
    "port": 8080,
    "resources": {
        "limits": {"cpu": "1500m", "memory": "512Mi"},
        "requests": {"cpu": "500m", "memory": "256Mi"},
    },
    "gunicorn": {
        "timeout": 60,
        "gracefulTimeout": 20,
        "maxRequests": 1000,
        "maxRequestsJitter": 100,
    },
    "terminationGracePeriodSeconds": 45,
    "runMode": "production",
    "env": [
        {"name": "DJANGO_ALLOWED_HOSTS", "value": "shop.example.com"},
        {
            "name": "DJANGO_SECRET_KEY",
            "valueFrom": {"secretKeyRef": {"name": "shop-secrets", "key": "secret-key"}},
        },
    ],
    "envFrom": [
        {"configMapRef": {"name": "shop-config"}},
        {"secretRef": {"name": "shop-db", "optional": True}, "prefix": "DB_"},
    ],
    "service": {"enabled": True, "type": "LoadBalancer", "port": 443},
}
