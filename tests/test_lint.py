"""Static checks CI runs with the suite: ruff over the repo, hadolint on both Dockerfiles,
and every manifest in crds/ and deploy/ (and what kustomize builds from deploy/) validated
offline against the official Kubernetes schema or, for custom kinds, the CRD's schema."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy_support import (
    KUSTOMIZATIONS,
    REPO,
    VENV_BIN,
    crd_schemas,
    iter_docs,
    load_docs,
    manifest_files,
    validate_custom,
    validate_doc,
)


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_ruff_clean() -> None:
    result = _run(VENV_BIN / "ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", ["Dockerfile.app", "Dockerfile.operator"])
def test_hadolint_clean(dockerfile: str) -> None:
    assert (REPO / dockerfile).is_file(), f"{dockerfile} is missing"
    result = _run(VENV_BIN / "hadolint", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_manifests_to_check() -> None:
    names = {p.relative_to(REPO).as_posix() for p in manifest_files()}
    assert "crds/coffeeserver.yaml" in names
    assert {"deploy/examples/minimal.yaml", "deploy/examples/full.yaml"} <= names


@pytest.mark.parametrize(
    "path", manifest_files(), ids=lambda p: p.relative_to(REPO).as_posix()
)
def test_manifest_validates(path: Path) -> None:
    schemas = crd_schemas()
    docs = load_docs(path.read_text())
    assert docs, f"{path} holds no objects"
    for doc in docs:
        validate_doc(doc, schemas)


@pytest.fixture(scope="module")
def kubectl() -> Path:
    """The kubectl the cluster harness builds (a current client with kustomize built in)."""
    from tests.cluster.localcluster import ensure_binaries

    return Path(ensure_binaries()) / "kubectl"


@pytest.mark.parametrize("root", KUSTOMIZATIONS)
def test_kustomize_build_validates(kubectl: Path, root: str) -> None:
    result = _run(kubectl, "kustomize", root)
    assert result.returncode == 0, result.stderr
    docs = load_docs(result.stdout)
    kinds = [d["kind"] for d in docs]
    # One source for the CRD: it comes from crds/ through kustomize, not a copy.
    assert kinds.count("CustomResourceDefinition") == 3, kinds
    assert {"Namespace", "ServiceAccount", "Deployment", "PodDisruptionBudget"} <= set(kinds)
    schemas = crd_schemas()
    # Only built-in kinds: custom objects cannot be created in the apply that creates their
    # CRD (see below), so the peering object is made by the operator pod's init container.
    assert {validate_doc(doc, schemas) for doc in docs} == {"kubernetes"}


@pytest.mark.parametrize("root", KUSTOMIZATIONS)
def test_install_holds_no_object_of_a_kind_it_defines(kubectl: Path, root: str) -> None:
    """kubectl maps every object's kind before creating any, so one `apply -k` cannot create
    a CRD and an object of that kind: such an object would fail the first install."""
    docs = load_docs(_run(kubectl, "kustomize", root).stdout)
    defined = {
        (f"{d['spec']['group']}/{v['name']}", d["spec"]["names"]["kind"])
        for d in docs
        if d["kind"] == "CustomResourceDefinition"
        for v in d["spec"]["versions"]
    }
    clashing = [d["metadata"]["name"] for d in docs if (d["apiVersion"], d["kind"]) in defined]
    assert not clashing, clashing


def _closed_schema_error(doc: dict[str, Any]) -> str:
    try:
        validate_custom(doc, crd_schemas())
    except jsonschema.ValidationError as exc:
        return exc.message
    return ""


def test_custom_kind_validation_catches_typos_and_bad_values() -> None:
    """The offline CRD check must be able to fail, or the examples' checks prove nothing."""
    minimal = load_docs((REPO / "deploy/examples/minimal.yaml").read_text())[0]
    typo = {**minimal, "spec": {**minimal["spec"], "gunicorn": {"gracefullTimeout": 10}}}
    assert "gracefullTimeout" in _closed_schema_error(typo)
    negative = {**minimal, "spec": {**minimal["spec"], "replicas": -1}}
    assert _closed_schema_error(negative)


@pytest.mark.parametrize("example", ["minimal.yaml", "full.yaml"])
def test_example_renders_to_valid_objects(example: str) -> None:
    """The operator's own parser accepts each example, and what it would apply is valid."""
    result = _run(VENV_BIN / "coffee-operator", "render", "-f", f"deploy/examples/{example}")
    assert result.returncode == 0, result.stderr
    rendered = load_docs(result.stdout)
    assert {d["kind"] for d in rendered} == {"Deployment", "Service"}
    for doc in rendered:
        assert validate_doc(doc, crd_schemas()) == "kubernetes"


def test_every_deploy_object_is_covered_by_a_kustomization() -> None:
    """No stray manifest in deploy/ that `kubectl apply -k` would silently leave out."""
    listed: set[str] = set()
    for kfile in REPO.glob("deploy/**/kustomization.yaml"):
        for doc in load_docs(kfile.read_text()):
            for res in doc.get("resources", []):
                target = (kfile.parent / res).resolve()
                if target.suffix == ".yaml":
                    listed.add(target.relative_to(REPO).as_posix())
    stray = [
        p.relative_to(REPO).as_posix()
        for p, _ in iter_docs(manifest_files())
        if p.relative_to(REPO).parts[0] == "deploy"
        and p.relative_to(REPO).parts[1] != "examples"
        and p.relative_to(REPO).as_posix() not in listed
    ]
    assert not stray, f"not referenced by any kustomization: {sorted(set(stray))}"
