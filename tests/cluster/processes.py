"""Child processes of the local cluster: start, watch, stop, and never leave any behind.

Each component runs as the leader of its own process group, so stopping it also
stops anything it forked; the kernel kills it if our Python process dies (even by
SIGKILL); and an atexit hook plus SIGTERM/SIGHUP handlers stop whatever is still
registered, so an interrupted pytest or ``make cluster`` cleans up after itself.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Protocol

LOG_TAIL_LINES = 40
OWNER_FILE = "owner.pid"
KEEP_FILE = "KEEP"


class ClusterStartError(RuntimeError):
    """The control plane did not come up; the message names the component and its log tail."""


def free_port() -> int:
    """An ephemeral loopback port that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


def make_run_dir(prefix: str) -> Path:
    """A fresh temp dir recording which process owns it (see prune_orphaned_run_dirs)."""
    run_dir = Path(tempfile.mkdtemp(prefix=prefix))
    (run_dir / OWNER_FILE).write_text(str(os.getpid()))
    return run_dir


def keep_run_dir(run_dir: Path) -> None:
    """Mark a run dir as kept on purpose (logs of a failed start), so pruning spares it."""
    (run_dir / KEEP_FILE).touch()


def prune_orphaned_run_dirs(prefix: str) -> None:
    """Remove run dirs whose owner died without cleaning up (SIGKILL leaves them behind)."""
    for run_dir in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            owner = int((run_dir / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or being created right now
        if (run_dir / KEEP_FILE).exists() or Path(f"/proc/{owner}").exists():
            continue
        shutil.rmtree(run_dir, ignore_errors=True)


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it when our process dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass
class Component:
    """One running control-plane process (leader of its own process group) and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @classmethod
    def spawn(
        cls, name: str, argv: Sequence[str], log_path: Path, cwd: Path, env: Mapping[str, str]
    ) -> Component:
        """Start ``argv`` with stdout and stderr going to ``log_path``."""
        log_file = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # own process group: stop() kills it and anything it forks
            preexec_fn=_die_with_parent,
        )
        return cls(name, proc, log_path, log_file)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def failure(self, what: str) -> ClusterStartError:
        state = "is running" if self.alive() else f"exited with code {self.proc.returncode}"
        return ClusterStartError(
            f"{what}: {self.name} {state}; last lines of {self.log_path}:\n{tail(self.log_path)}"
        )

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after ``grace_seconds``; then kill what is left of its group."""
        self.signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait()
        self.signal_group(signal.SIGKILL)
        self.log_file.close()


class Stoppable(Protocol):
    def stop(self) -> None: ...


# Everything started in this process, stopped at exit or on SIGTERM/SIGHUP whatever the
# caller does (a pytest session killed by a CI time-out, a closed terminal).
_LIVE: list[Stoppable] = []
_HANDLERS_INSTALLED = False


def stop_all() -> None:
    for item in list(_LIVE):
        item.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    stop_all()
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def register(item: Stoppable) -> None:
    """Make sure ``item.stop()`` runs at interpreter exit or on SIGTERM/SIGHUP."""
    global _HANDLERS_INSTALLED
    if not _HANDLERS_INSTALLED:
        atexit.register(stop_all)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) in (signal.SIG_DFL, None):
                    signal.signal(sig, _on_signal)
        _HANDLERS_INSTALLED = True
    if item not in _LIVE:
        _LIVE.append(item)


def unregister(item: Stoppable) -> None:
    if item in _LIVE:
        _LIVE.remove(item)
