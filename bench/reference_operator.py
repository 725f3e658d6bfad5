"""The yardstick of SPEC 7: a minimal kopf operator, written as a new user would write it.

It does less than coffee-operator: on create only, it POSTs a Deployment and a Service with
the official ``kubernetes`` client (sync handler, run in kopf's thread pool) and patches
``status.observedGeneration``. No update, resume, drift or deletion handling, no
conditions, no Events of its own, kopf's default state storage (the last-handled-
configuration annotation). The objects are the very ones coffee-operator renders
(``coffee_operator.manifests.render``, owner references included), so the comparison is
between the operators, not between pod templates: every pod, ReplicaSet and status update
the controllers derive from a Deployment costs the API server in proportion to its
template. The operator benchmarks run it through the same measurement
(``--operator reference``) in the same invocation as coffee-operator.

    .venv/bin/kopf run bench/reference_operator.py --all-namespaces --standalone
"""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes
from coffee_operator.manifests import render


@kopf.on.create("coffee.example.com", "v1alpha1", "coffeeservers")
def create_fn(
    body: kopf.Body, namespace: str, meta: kopf.Meta, patch: kopf.Patch, **_: Any
) -> None:
    _, (deployment, service) = render(dict(body))
    kubernetes.client.AppsV1Api().create_namespaced_deployment(namespace, deployment)
    kubernetes.client.CoreV1Api().create_namespaced_service(namespace, service)
    patch.status["observedGeneration"] = meta.get("generation")
