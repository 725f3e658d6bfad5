"""The scratch PostgreSQL of tests/support/postgres.py does not outlive a killed owner."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[1]

OWNER = """
import json, sys, time
from tests.support.postgres import postgres_server
with postgres_server() as pg:
    print(json.dumps({"port": pg.port, "root": str(pg.data_dir.parent)}), flush=True)
    time.sleep(600)
"""


def _accepting(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_server_is_stopped_and_deleted_when_its_owner_dies(sig: signal.Signals) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], cwd=REPO, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert owner.stdout is not None
        info = json.loads(owner.stdout.readline())
        assert _accepting(info["port"]) and Path(info["root"]).exists()
        owner.send_signal(sig)  # no teardown runs: the watchdog must clean up
        owner.wait(timeout=10)
        wait_for("the orphaned server to stop", lambda: not _accepting(info["port"]), 30)
        wait_for("its files to be deleted", lambda: not Path(info["root"]).exists(), 30)
    finally:
        owner.kill()
        owner.wait()
