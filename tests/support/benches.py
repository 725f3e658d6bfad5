"""Run a benchmark script under bench/ the way a person does, for the bench smoke tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"


def run_bench(script: str, *args: str, timeout: float = 300) -> str:
    """stdout of `python bench/<script> <args>` from the repo root; fails on a non-zero exit."""
    proc = subprocess.run(
        [str(PYTHON if PYTHON.exists() else sys.executable), f"bench/{script}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout
