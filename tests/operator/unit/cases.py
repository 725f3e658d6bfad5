"""Boundary cases for every CoffeeServer spec field, shared by the offline agreement test
and the one against the real API server (tests/operator/crd)."""

from __future__ import annotations

import copy
from typing import Any

BASE: dict[str, Any] = {"image": "coffee/app:1"}

VARIANTS: dict[str, list[Any]] = {
    "image": ["", "x", 7],
    "imagePullPolicy": ["Always", "IfNotPresent", "Never", "Sometimes"],
    "imagePullSecrets": [[{"name": "a"}], [{"name": ""}], [{}], [{"name": "a"}, {"name": "a"}]],
    "replicas": [-1, 0, 1, 2, 2147483647, "3"],
    "port": [0, 1, 8000, 65535, 65536],
    "gunicorn.workers": [0, 1, 4, 256, 257],
    "gunicorn.timeout": [0, 1, 30, 3600, 3601],
    "gunicorn.gracefulTimeout": [0, 1, 10, 60, 3600, 3601],
    "gunicorn.maxRequests": [-1, 0, 1, 1000],
    "gunicorn.maxRequestsJitter": [-1, 0, 1, 50],
    "gunicorn.colour": ["red"],
    "terminationGracePeriodSeconds": [0, 1, 11, 35, 36, 40, 65, 66, 86400, 86401],
    "runMode": ["production", "development", "debug"],
    "resources.limits.cpu": ["500m", "2", 2, "1e3m", "abc", " 1"],
    "resources.requests.memory": ["256Mi", "1GB"],
    "env": [
        [{"name": "A", "value": "1"}],
        [{"name": "RUN_MODE", "value": "x"}],
        [{"name": "GUNICORN_WORKERS", "value": "2"}],
        [{"name": "GUNICORN_CMD_ARGS", "value": "--x"}],
        [{"name": "A=B", "value": "1"}],
        [{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
        [{"value": "1"}],
        [{"name": ""}],
    ],
    "envFrom": [
        [{"configMapRef": {"name": "a"}}],
        [{"secretRef": {"name": "b", "optional": True}, "prefix": "P_"}],
        [{}],
        [{"prefix": "P_"}],
        [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}],
        [{"configMapRef": {}}],
    ],
    "service.enabled": [True, False, "no"],
    "service.type": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
    "service.port": [0, 80, 65535, 65536],
    "colour": ["red"],
}
SINGLE_CHANGES = [(key, value) for key, values in VARIANTS.items() for value in values]


def with_change(spec: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    *parents, leaf = key.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = copy.deepcopy(value)
    return spec
