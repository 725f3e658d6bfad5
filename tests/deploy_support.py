"""Helpers shared by the deploy/lint/README tests: find the repo's manifests and validate
them offline -- built-in kinds against the official Kubernetes schema (kubernetes-validate),
custom kinds against the openAPIV3Schema of the CRD that defines them in this repo."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
# The minor version of the control plane tests/cluster builds (k8s.io/kubernetes v1.36.x).
K8S_VERSION = "1.36.0"
KUSTOMIZATIONS = ("deploy", "deploy/namespaced")
KUSTOMIZATION_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}


def manifest_files() -> list[Path]:
    """Every YAML manifest under crds/ and deploy/ (kustomization files are not manifests)."""
    files = [*REPO.glob("crds/**/*.yaml"), *REPO.glob("deploy/**/*.yaml")]
    return sorted(p for p in files if p.name not in KUSTOMIZATION_NAMES)


def load_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema for every CRD defined in this repo."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in manifest_files():
        for doc in load_docs(path.read_text()):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields forbidden wherever the API server would prune them.

    A structural schema silently drops undeclared fields, so a typo in an example
    (`gracefullTimeout`) would apply "fine" and do nothing; closing the objects catches it.
    """
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # ObjectMeta is not spelled out in CRD schemas; the API server validates it itself.
    schema.setdefault("properties", {}).update(
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
        }
    )
    return schema


def validate_custom(doc: dict[str, Any], schemas: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Raise jsonschema.ValidationError if `doc` breaks its CRD's schema (unknown fields too)."""
    schema = schemas[(doc["apiVersion"], doc["kind"])]
    jsonschema.Draft4Validator(_closed(schema)).validate(doc)


def validate_doc(doc: dict[str, Any], schemas: dict[tuple[str, str], dict[str, Any]]) -> str:
    """Validate one object; return which schema was used. Never passes an object unchecked."""
    if (doc.get("apiVersion"), doc.get("kind")) in schemas:
        validate_custom(doc, schemas)
        return "crd"
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    return "kubernetes"


def iter_docs(paths: list[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in paths:
        for doc in load_docs(path.read_text()):
            yield path, doc
