"""Our in-memory diff-base computes exactly kopf's essence, with less copying."""

from __future__ import annotations

import kopf
from coffee_operator.storage import MemoryDiffBaseStorage

BODY = {
    "apiVersion": "coffee.example.com/v1alpha1",
    "kind": "CoffeeServer",
    "metadata": {
        "name": "shop",
        "namespace": "cafe",
        "uid": "0b1c",
        "generation": 3,
        "resourceVersion": "42",
        "labels": {"team": "payments"},
        "annotations": {
            "note": "kept",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "kopf.zalando.org/last-handled-configuration": "{}",
        },
        "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
    },
    "spec": {"image": "coffee:1", "env": [{"name": "A", "value": "b"}]},
    "status": {"observedGeneration": 3, "conditions": [{"type": "Ready"}]},
}


def test_essence_equals_kopfs_own() -> None:
    storage = MemoryDiffBaseStorage()
    body = kopf.Body(BODY)
    assert storage.build(body=body) == kopf.DiffBaseStorage.build(storage, body=body)


def test_essence_keeps_spec_labels_and_user_annotations_only() -> None:
    essence = MemoryDiffBaseStorage().build(body=kopf.Body(BODY))
    assert essence == {
        "spec": BODY["spec"],
        "metadata": {"labels": {"team": "payments"}, "annotations": {"note": "kept"}},
    }


def test_children_have_no_essence() -> None:
    child = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"}}
    assert MemoryDiffBaseStorage().build(body=kopf.Body(child)) == {}
