"""The real kube-apiserver and the operator's parser agree on the CoffeeServer schema.

Every boundary case of the unit agreement test (one field changed at a time) is sent
to the local control plane as a server-side dry-run create with strict field
validation: the API server accepts exactly the specs the parser accepts, refuses the
same field, and the defaults it fills in parse to the same effective spec. This is
the ground truth that the offline model in ``tests/operator/unit/apiserver_model.py``
(jsonschema + cel-python) stands in for.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import pytest
from coffee_operator.errors import SpecError
from coffee_operator.manifests import check_metadata
from coffee_operator.spec import parse_spec

from tests.operator.unit.cases import BASE, SINGLE_CHANGES, with_change

if TYPE_CHECKING:
    from tests.cluster.localcluster import LocalCluster

PLURAL_PATH = "/apis/coffee.example.com/v1alpha1/namespaces/{ns}/coffeeservers"
QUERY = "?dryRun=All&fieldValidation=Strict"


def dry_run_create(
    cluster: LocalCluster, namespace: str, spec: Any, name: str = "shop"
) -> tuple[int, Any]:
    body = {"apiVersion": "coffee.example.com/v1alpha1", "kind": "CoffeeServer",
            "metadata": {"name": name}, "spec": spec}
    return cluster.api_request(PLURAL_PATH.format(ns=namespace) + QUERY, "POST", body)


def refused_fields(answer: Any) -> str:
    """Everything the API server said about the refusal, for matching the field path."""
    return json.dumps(answer) if not isinstance(answer, str) else answer


def parser_field(spec: Any) -> str | None:
    try:
        parse_spec(spec)
    except SpecError as err:
        return err.field
    return None


@pytest.fixture(scope="module")
def ns(cluster: LocalCluster) -> str:
    name = "schema-agreement"
    cluster.kubectl("create", "namespace", name, check=False)
    return name


@pytest.mark.parametrize(
    ("key", "value"), SINGLE_CHANGES, ids=[f"{k}={v!r}" for k, v in SINGLE_CHANGES]
)
def test_api_server_and_parser_agree(cluster: LocalCluster, ns: str, key: str, value: Any) -> None:
    spec = with_change(BASE, key, value)
    status, answer = dry_run_create(cluster, ns, spec)
    field = parser_field(spec)
    if field is None:
        assert status == 201, f"parser accepts, API server refuses: {answer}"
        # The API server's defaults, parsed again, give the same effective spec.
        assert parse_spec(answer["spec"]) == parse_spec(copy.deepcopy(spec))
    else:
        assert status in (400, 422), f"parser refuses {field}, API server accepts"
        leaf = field.split(".")[-1].split("[")[0]
        assert leaf in refused_fields(answer), (field, answer)


@pytest.mark.parametrize("name", ["shop", "s" * 63, "s" * 64, "Shop", "my.shop", "1shop"])
def test_metadata_name_rule(cluster: LocalCluster, ns: str, name: str) -> None:
    status, answer = dry_run_create(cluster, ns, {"image": "x"}, name=name)
    try:
        check_metadata({"metadata": {"name": name}})
        accepted = True
    except SpecError:
        accepted = False
    assert (status == 201) == accepted, answer


def test_grace_period_message_names_the_minimum(cluster: LocalCluster, ns: str) -> None:
    status, answer = dry_run_create(
        cluster, ns, {"image": "x", "terminationGracePeriodSeconds": 35}
    )
    assert status == 422
    assert "minimum is 36" in answer["message"]
    assert any(c.get("field") == "spec.terminationGracePeriodSeconds"
               for c in answer["details"]["causes"])
