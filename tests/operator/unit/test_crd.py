"""The CoffeeServer CRD itself: valid, structural, documented, with every status field."""

from __future__ import annotations

from typing import Any

import celpy
import kubernetes_validate
import pytest
from coffee_operator import crd as crd_module
from coffee_operator.config import effective_config, status_fields
from coffee_operator.spec import parse_spec

from . import apiserver_model
from .helpers import CRD_PATH, K8S_VERSION

STATUS_FIELDS = {
    "observedGeneration", "workers", "workersSource", "timeout", "gracefulTimeout",
    "maxRequests", "maxRequestsJitter", "terminationGracePeriodSeconds", "replicas",
    "readyReplicas", "updatedReplicas", "availableReplicas", "conditions",
}


def all_nodes() -> list[tuple[str, dict[str, Any]]]:
    return list(crd_module.walk(apiserver_model.root_schema(), ""))


def version() -> dict[str, Any]:
    return apiserver_model.crd()["spec"]["versions"][0]


def test_crd_validates_against_the_official_schema() -> None:
    kubernetes_validate.validate(apiserver_model.crd(), K8S_VERSION, strict=True)


def test_names_scope_and_version() -> None:
    spec = apiserver_model.crd()["spec"]
    assert apiserver_model.crd()["metadata"]["name"] == "coffeeservers.coffee.example.com"
    assert spec["group"] == "coffee.example.com"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "CoffeeServer"
    assert spec["names"]["plural"] == "coffeeservers"
    assert "coffee" in spec["names"]["shortNames"]
    assert "all" in spec["names"]["categories"]
    [v] = spec["versions"]
    assert (v["name"], v["served"], v["storage"]) == ("v1alpha1", True, True)
    assert v["subresources"] == {"status": {}}


def test_every_field_has_a_description() -> None:
    missing = [path for path, node in all_nodes()
               if path != ".metadata" and not node.get("description")]
    assert not missing, f"fields without a description (kubectl explain): {missing}"


def test_schema_is_structural() -> None:
    """Every node has a type (or is int-or-string); properties never mix with a map."""
    for path, node in all_nodes():
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("type") == "array":
            assert "items" in node, path


def test_defaults_satisfy_their_own_bounds() -> None:
    for path, node in all_nodes():
        if "default" not in node:
            continue
        value = node["default"]
        if "enum" in node:
            assert value in node["enum"], path
        if "minimum" in node:
            assert value >= node["minimum"], path
        if "maximum" in node:
            assert value <= node["maximum"], path


def test_status_declares_every_field_the_operator_writes() -> None:
    status = apiserver_model.root_schema()["properties"]["status"]["properties"]
    assert set(status) >= STATUS_FIELDS
    written = status_fields(effective_config(parse_spec({"image": "x"})))
    assert set(written) <= set(status)
    assert status["workersSource"]["enum"] == ["Spec", "CPULimit", "CPURequest", "Default"]
    for key, value in written.items():
        assert status[key]["type"] == ("string" if isinstance(value, str) else "integer"), key


def test_conditions_have_the_metav1_condition_shape() -> None:
    conditions = apiserver_model.root_schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["properties"]) == {
        "type", "status", "reason", "message", "observedGeneration", "lastTransitionTime",
    }
    assert set(item["required"]) == {"type", "status", "reason", "message", "lastTransitionTime"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_printer_columns() -> None:
    columns = {c["name"]: c for c in version()["additionalPrinterColumns"]}
    assert {"Workers", "Replicas", "Ready", "Age"} <= set(columns)
    assert columns["Workers"]["jsonPath"] == ".status.workers"
    assert columns["Replicas"]["jsonPath"] == ".spec.replicas"
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"] == {"name": "Age", "type": "date",
                              "jsonPath": ".metadata.creationTimestamp"}
    declared = {path for path, _ in all_nodes()}
    for column in columns.values():
        path = column["jsonPath"].split("[")[0]
        assert path in declared or path.startswith(".metadata"), column


@pytest.mark.parametrize(
    "rule",
    [r for _, n in crd_module.walk(apiserver_model.root_schema(), "")
     for r in n.get("x-kubernetes-validations", [])],
    ids=lambda r: r["rule"][:40],
)
def test_cel_rules_compile_and_carry_a_message(rule: dict[str, Any]) -> None:
    env = celpy.Environment()
    env.compile(rule["rule"])
    assert rule.get("message")
    if "messageExpression" in rule:
        env.compile(rule["messageExpression"])


def test_cross_field_rules_exist() -> None:
    spec = apiserver_model.root_schema()["properties"]["spec"]
    rules = {r.get("fieldPath") for r in spec["x-kubernetes-validations"]}
    assert ".terminationGracePeriodSeconds" in rules
    gunicorn = spec["properties"]["gunicorn"]["x-kubernetes-validations"]
    assert [r["fieldPath"] for r in gunicorn] == [".maxRequestsJitter"]


def test_grace_period_message_names_the_minimum() -> None:
    """A static message: the API server refuses messageExpressions that build strings
    from numbers (estimated cost over budget), so the default case's minimum is spelled out;
    the operator's own error computes the exact minimum for any timeout."""
    spec = apiserver_model.root_schema()["properties"]["spec"]
    [rule] = spec["x-kubernetes-validations"]
    assert "messageExpression" not in rule
    assert "minimum is 36" in rule["message"]


def test_metadata_restricts_only_the_name() -> None:
    """Structural schemas may constrain metadata.name (and generateName) only."""
    metadata = apiserver_model.root_schema()["properties"]["metadata"]
    assert set(metadata["properties"]) == {"name"}
    assert metadata["properties"]["name"]["maxLength"] == 63


def test_the_package_ships_the_repository_crd() -> None:
    """One source: the package's crd.yaml is the repository's crds/coffeeserver.yaml."""
    assert crd_module.crd_text() == CRD_PATH.read_text()
    assert crd_module.load_crd() == apiserver_model.crd()
