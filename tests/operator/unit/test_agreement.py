"""The CRD schema, the operator's parser and the generated docs agree.

1. Field by field: every spec field of the CRD is in the parser's table with the
   same type, default, bounds, enum, lengths and item limits, and vice versa.
2. Behaviour: for boundary values of every field (one change at a time) and for a
   seeded random mix, the parser accepts exactly what the API server model
   (defaulting + OpenAPI + list-map keys + the CRD's CEL rules) accepts, and
   names the same field.
3. Docs: the generated reference lists exactly the CRD's fields with the same
   defaults and bounds, and README.md holds the current table.
"""

from __future__ import annotations

import copy
import random
import re
from typing import Any

import pytest
from coffee_operator import docs
from coffee_operator.errors import SpecError
from coffee_operator.manifests import check_metadata
from coffee_operator.spec import COMPUTED_DEFAULTS, FIELDS, FIELDS_BY_PATH, parse_spec

from . import apiserver_model
from .cases import BASE, SINGLE_CHANGES, VARIANTS, with_change
from .helpers import REPO


def crd_spec_nodes() -> dict[str, dict[str, Any]]:
    """Walk the CRD's spec schema (own walker, independent of coffee_operator.crd)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: dict[str, Any], path: str) -> None:
        found[path] = node
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}")
        if "items" in node:
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}{{}}")

    walk(apiserver_model.root_schema()["properties"]["spec"], "spec")
    del found["spec"]
    return found


def _required(path: str, nodes: dict[str, dict[str, Any]]) -> bool:
    parent, _, name = path.rpartition(".")
    parent_node = nodes.get(parent) or apiserver_model.root_schema()["properties"]["spec"]
    return name in parent_node.get("required", [])


def test_same_field_paths() -> None:
    assert set(crd_spec_nodes()) == set(FIELDS_BY_PATH)
    assert len(FIELDS) == len(FIELDS_BY_PATH)


@pytest.mark.parametrize("path", sorted(FIELDS_BY_PATH))
def test_same_type_default_bounds(path: str) -> None:
    nodes = crd_spec_nodes()
    node, field = nodes[path], FIELDS_BY_PATH[path]
    if field.type == "quantity":
        assert node.get("x-kubernetes-int-or-string") is True
        assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    else:
        assert node["type"] == field.type
    assert node.get("default") == field.default
    assert node.get("minimum") == field.minimum
    assert node.get("maximum") == field.maximum
    assert tuple(node["enum"]) == field.enum if "enum" in node else field.enum is None
    assert node.get("minLength") == field.min_length
    assert node.get("maxLength") == field.max_length
    assert node.get("maxItems") == field.max_items
    assert bool(node.get("x-kubernetes-preserve-unknown-fields")) == field.free_form
    assert _required(path, nodes) == field.required
    if node.get("x-kubernetes-list-type") == "map":
        assert node["x-kubernetes-list-map-keys"] == [field.unique_key]
    else:
        assert field.unique_key is None


def test_computed_defaults_are_for_fields_without_a_schema_default() -> None:
    nodes = crd_spec_nodes()
    for path in COMPUTED_DEFAULTS:
        assert "default" not in nodes[path], path


# -- behaviour -------------------------------------------------------------------------------

def parser_rejection(spec: dict[str, Any]) -> str | None:
    try:
        parse_spec(spec)
    except SpecError as err:
        return err.field
    return None


def model_rejection(spec: dict[str, Any]) -> str | None:
    obj = {"apiVersion": "coffee.example.com/v1alpha1", "kind": "CoffeeServer",
           "metadata": {"name": "shop"}, "spec": spec}
    return apiserver_model.rejection(obj)


@pytest.mark.parametrize(
    ("key", "value"), SINGLE_CHANGES, ids=[f"{k}={v!r}" for k, v in SINGLE_CHANGES]
)
def test_parser_and_schema_refuse_the_same_field(key: str, value: Any) -> None:
    spec = with_change(BASE, key, value)
    assert parser_rejection(spec) == model_rejection(spec)


def test_the_comparison_sees_both_outcomes() -> None:
    outcomes = [model_rejection(with_change(BASE, k, v)) is None for k, v in SINGLE_CHANGES]
    assert sum(outcomes) > 20 and outcomes.count(False) > 40


def test_random_combinations_agree_on_validity() -> None:
    rng = random.Random(20261122)
    keys = sorted(VARIANTS)
    checked = accepted = 0
    for _ in range(300):
        spec = copy.deepcopy(BASE)
        for key in rng.sample(keys, rng.randint(2, 5)):
            spec = with_change(spec, key, rng.choice(VARIANTS[key]))
        by_model = model_rejection(spec) is None
        assert (parser_rejection(spec) is None) == by_model, spec
        checked += 1
        accepted += by_model
    assert checked == 300 and 10 < accepted < 290


def test_parser_only_rules_are_the_documented_extras() -> None:
    """Rules the schema cannot express (quantity comparison, negative quantities): the API
    server would refuse the Deployment later; the parser refuses the CoffeeServer now."""
    too_big = {"image": "x", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}}
    negative = {"image": "x", "resources": {"limits": {"cpu": "-1"}}}
    for spec, field in ((too_big, "spec.resources.requests.cpu"),
                        (negative, "spec.resources.limits.cpu")):
        assert model_rejection(spec) is None
        assert parser_rejection(spec) == field


@pytest.mark.parametrize(
    "name", ["shop", "a", "a-1", "s" * 63, "s" * 64, "Shop", "1shop", "my.shop", "shop-", "sh_op"]
)
def test_metadata_name_rule_matches_the_renderer(name: str) -> None:
    obj = {"apiVersion": "coffee.example.com/v1alpha1", "kind": "CoffeeServer",
           "metadata": {"name": name}, "spec": {"image": "x"}}
    by_model = apiserver_model.rejection(obj)
    try:
        check_metadata(obj)
        by_renderer = None
    except SpecError as err:
        by_renderer = err.field
    assert (by_model is None) == (by_renderer is None)
    if by_renderer:
        assert by_renderer == "metadata.name"


# -- docs ------------------------------------------------------------------------------------


def test_docs_list_exactly_the_crd_fields() -> None:
    documented = [row[0] for row in docs.rows()]
    expected = [p for p in crd_spec_nodes() if not p.endswith(("[]", "{}"))]
    assert documented == expected


@pytest.mark.parametrize("row", docs.rows(), ids=lambda r: r[0])
def test_docs_defaults_and_bounds_match_the_parser(row: tuple[str, ...]) -> None:
    path, kind, default, bounds, description = row
    field = FIELDS_BY_PATH[path]
    assert description, f"{path} has no description"
    if field.default is None:
        assert default == (f"computed: {COMPUTED_DEFAULTS[path]}" if path in COMPUTED_DEFAULTS
                           else "")
    elif isinstance(field.default, bool):
        assert default == f"`{str(field.default).lower()}`"
    else:
        assert default == f"`{field.default}`"
    if field.minimum is not None and field.maximum is not None:
        assert f"{field.minimum}..{field.maximum}" in bounds
    for value in field.enum or ():
        assert f"`{value}`" in bounds
    if field.max_items is not None:
        assert f"<= {field.max_items} items" in bounds
    assert field.required == description.startswith("**Required.**")
    expected_kind = {"quantity": "quantity"}.get(field.type, field.type)
    if field.free_form:
        expected_kind = "object (free-form)"
    elif FIELDS_BY_PATH.get(path + "{}"):
        expected_kind = "map[string]quantity"
    elif FIELDS_BY_PATH.get(path + "[]"):
        expected_kind = "[]" + FIELDS_BY_PATH[path + "[]"].type
    assert kind == expected_kind


def test_docs_list_every_cross_field_rule() -> None:
    rules = docs.rules()
    where = {w for w, _ in rules}
    assert {"spec.terminationGracePeriodSeconds", "spec.gunicorn.maxRequestsJitter",
            "spec.env[].name", "spec.env[].valueFrom", "spec.envFrom[]"} <= where
    assert all(message for _, message in rules)


def test_readme_holds_the_current_field_reference() -> None:
    readme = (REPO / "README.md").read_text()
    assert docs.START in readme and docs.END in readme
    assert docs.splice(readme, docs.markdown()) == readme, (
        "README.md is out of date: run .venv/bin/python -m coffee_operator.docs --write"
    )
    for field in FIELDS:
        if not field.path.endswith(("[]", "{}")):
            assert re.search(rf"\| `{re.escape(field.path)}` \|", readme), field.path
