"""`coffee-operator run` must not load the generated kubernetes client (~22 MB RSS)."""

from __future__ import annotations

import subprocess
import sys

from coffee_operator.fingerprint import ANNOTATION, fingerprint
from coffee_operator.manifests import render_objects

CHECK = """
import sys
from coffee_operator import cli, runner
runner.load_quantity_parser_only()
import coffee_operator.handlers
from coffee_operator.sizing import compute_workers
assert compute_workers(None, {"limits": {"cpu": "1500m"}}) == (4, "CPULimit")
client = sys.modules.get("kubernetes.client")
print("loaded" if client is not None else "absent")
"""


def test_run_path_never_imports_the_generated_client() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "absent"


def test_rendered_objects_carry_the_fingerprint_the_operator_applies() -> None:
    cr = {
        "apiVersion": "coffee.example.com/v1alpha1",
        "kind": "CoffeeServer",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {"image": "example/coffee:1"},
    }
    for obj in render_objects(cr):
        assert obj["metadata"]["annotations"][ANNOTATION] == fingerprint(obj)
