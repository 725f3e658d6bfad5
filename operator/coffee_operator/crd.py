"""Access to the CoffeeServer CRD shipped with the package.

``crds/coffeeserver.yaml`` in the repository is the single source. The package
holds ``crd.yaml``, a symlink to it, declared as package data: an editable
install reads the repository file directly, and building a wheel copies the
file's content (setuptools follows the link), so an installed operator and
``coffee-operator crd`` still have it. No generated copy can drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import yaml

_RESOURCE = "crd.yaml"


def crd_text() -> str:
    """The CRD as YAML text, exactly as in ``crds/coffeeserver.yaml``."""
    try:
        return resources.files(__package__).joinpath(_RESOURCE).read_text(encoding="utf-8")
    except FileNotFoundError as exc:  # built from a tree without crds/: the link dangled
        raise RuntimeError(
            "the CoffeeServer CRD is not packaged: build/install coffee-operator from a "
            "checkout that has crds/coffeeserver.yaml next to operator/"
        ) from exc


@cache
def _crd() -> dict[str, Any]:
    return yaml.safe_load(crd_text())


def load_crd() -> dict[str, Any]:
    """The parsed CRD (a fresh deep copy is not needed by callers that only read)."""
    return _crd()


def version_schema(version: str = "v1alpha1") -> dict[str, Any]:
    """The openAPIV3Schema of ``version``."""
    for v in _crd()["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise KeyError(f"CRD has no version {version}")


def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (path, schema) for ``node`` and every schema below it, depth first.

    Paths use the notation of :data:`coffee_operator.spec.FIELDS`: ``.`` for
    properties, ``[]`` for array items, ``{}`` for map values.
    """
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def spec_fields() -> list[tuple[str, dict[str, Any]]]:
    """Every schema node under ``spec`` (excluding ``spec`` itself), in CRD order."""
    return list(walk(version_schema()["properties"]["spec"], "spec"))[1:]
