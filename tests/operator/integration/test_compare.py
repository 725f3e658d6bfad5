"""Pure parts of write-avoidance: rendered-vs-live compare, fingerprint, freshest copy.

(No cluster needed; they live here because they test the live side's building blocks.)
"""

from __future__ import annotations

import copy
from typing import Any

from coffee_operator.drift import differences
from coffee_operator.fingerprint import ANNOTATION, fingerprint, stamp, stamped_value
from coffee_operator.livestate import LiveState, pack, trimmed, unpack

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "shop", "labels": {"a": "1"}},
    "spec": {
        "replicas": 2,
        "template": {"spec": {
            "containers": [{
                "name": "app",
                "env": [{"name": "GUNICORN_TIMEOUT", "value": "30"}],
                "resources": {"limits": {"cpu": "1.5", "memory": "1Gi"}},
                "envFrom": [],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        }},
    },
}


def live_copy() -> dict[str, Any]:
    """What the API server stores for DESIRED: defaults added, quantities normalised."""
    live = copy.deepcopy(DESIRED)
    live["metadata"].update(uid="u1", resourceVersion="10", labels={"a": "1", "extra": "x"})
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["cpu"] = "1500m"
    container["terminationMessagePath"] = "/dev/termination-log"
    del container["envFrom"]  # omitempty
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["status"] = {"replicas": 2}
    return live


def test_server_defaults_and_normalisation_are_not_differences() -> None:
    assert differences(DESIRED, live_copy()) == []


def test_hand_edited_env_is_named_by_path() -> None:
    live = live_copy()
    live["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "99"
    assert differences(DESIRED, live) == [
        "spec.template.spec.containers[app].env[GUNICORN_TIMEOUT].value"]


def test_added_env_entry_and_changed_quantity_are_differences() -> None:
    live = live_copy()
    live["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "X", "value": "1"})
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2"
    got = differences(DESIRED, live)
    assert "spec.template.spec.containers[app].env" in got
    assert "spec.template.spec.containers[app].resources.limits.cpu" in got


def test_missing_live_object_differs_everywhere() -> None:
    assert differences(DESIRED, None) == ["(object)"]


def test_quantity_equivalence_only_applies_to_resources() -> None:
    assert differences({"env": [{"name": "A", "value": "1"}]},
                       {"env": [{"name": "A", "value": "1.0"}]}) == ["env[A].value"]


def test_fingerprint_changes_with_the_render_and_is_idempotent() -> None:
    obj = stamp(copy.deepcopy(DESIRED))
    assert stamped_value(obj) == fingerprint(DESIRED)
    assert stamp(copy.deepcopy(obj)) == obj
    changed = copy.deepcopy(DESIRED)
    del changed["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert fingerprint(changed) != fingerprint(DESIRED)
    # A removed field is invisible to the subset compare, but not to the fingerprint:
    live = stamp(live_copy() | {"metadata": {**live_copy()["metadata"],
                                             "annotations": {ANNOTATION: fingerprint(DESIRED)}}})
    assert differences(stamp(changed), live) == [f"metadata.annotations.{ANNOTATION}"]


def test_freshest_prefers_our_write_until_the_watch_catches_up() -> None:
    live = LiveState()
    key = ("Deployment", "ns", "shop")
    old = {"kind": "Deployment", "metadata": {"namespace": "ns", "name": "shop",
                                              "resourceVersion": "5"}}
    ours = copy.deepcopy(old)
    ours["metadata"]["resourceVersion"] = "7"
    live.wrote(ours)
    assert live.freshest(key, old)["metadata"]["resourceVersion"] == "7"
    assert live.freshest(key, None)["metadata"]["resourceVersion"] == "7"
    newer = copy.deepcopy(old)
    newer["metadata"]["resourceVersion"] = "8"
    assert live.freshest(key, newer)["metadata"]["resourceVersion"] == "8"
    assert len(live) == 0  # dropped once the watch delivered a newer copy
    live.wrote(ours)
    live.forget(key)
    assert live.freshest(key, None) is None


def test_index_values_drop_managed_fields() -> None:
    body = {"kind": "Service", "metadata": {"name": "s", "managedFields": [{"manager": "x"}]}}
    assert trimmed(body) == {"kind": "Service", "metadata": {"name": "s"}}
    assert body["metadata"]["managedFields"]  # the watch body itself is not modified


def test_packed_index_values_round_trip() -> None:
    live = live_copy()
    live["metadata"]["managedFields"] = [{"manager": "kube-controller-manager"}]
    small = pack(live)
    assert isinstance(small, bytes)  # one object, outside the small-object arenas
    assert b"managedFields" not in small
    assert unpack(small) == trimmed(live)
    assert unpack(None) is None
    assert unpack(trimmed(live)) == trimmed(live)  # our own writes are plain dicts
