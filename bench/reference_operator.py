"""The yardstick of SPEC 7: a minimal kopf operator, written as a new user would write it.

It does less than coffee-operator: on create only, it builds a Deployment and a Service
with the official ``kubernetes`` client (sync handler, run in kopf's thread pool),
adopts them (owner references), and patches ``status.observedGeneration``. No update,
resume, drift or deletion handling, no conditions, no Events of its own, kopf's default
state storage (the last-handled-configuration annotation). The operator benchmarks run
it through the very same measurement as coffee-operator (``--operator reference``), on
the same control plane in the same run, so the two are compared like for like.

    .venv/bin/kopf run bench/reference_operator.py --all-namespaces --standalone
"""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes


@kopf.on.create("coffee.example.com", "v1alpha1", "coffeeservers")
def create_fn(
    spec: kopf.Spec, name: str, namespace: str, meta: kopf.Meta, patch: kopf.Patch, **_: Any
) -> None:
    labels = {"app.kubernetes.io/name": "coffee-payments", "app.kubernetes.io/instance": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": spec.get("replicas", 2),
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": spec["image"],
                            "ports": [{"name": "http", "containerPort": 8000}],
                        }
                    ]
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    kopf.adopt([deployment, service])
    kubernetes.client.AppsV1Api().create_namespaced_deployment(namespace, deployment)
    kubernetes.client.CoreV1Api().create_namespaced_service(namespace, service)
    patch.status["observedGeneration"] = meta.get("generation")
