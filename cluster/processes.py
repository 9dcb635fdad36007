"""Child processes of the cluster: each in a session of its own, its output in a log file.

A session of its own means Ctrl-C reaches only the orchestrator, which then stops the children in
order (balancer first, database last), and that killing an instance takes all its workers with it.
Each child also gets SIGTERM should the orchestrator die without stopping it (Linux's PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from cluster import ClusterError

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 35  # gunicorn's graceful timeout (30 s) and a margin


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Managed:
    """One long-running program of the cluster."""

    def __init__(
        self, name: str, argv: list[str], log_dir: Path, env: dict | None = None, cwd=None, user: str | None = None
    ) -> None:
        """`user`: the account to run as (root starting what refuses to run as root), else ours."""
        self.name, self.argv, self.env, self.cwd, self.user = name, argv, env, cwd, user
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
                group=self.user and pwd.getpwnam(self.user).pw_gid,
                extra_groups=[] if self.user else None,
                preexec_fn=_die_with_parent,  # after the change of user, which would clear it
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        stop_together([self])

    def _terminate(self) -> None:
        if self.alive():
            self.process.terminate()

    def _await_exit(self) -> None:
        """Wait for a clean exit; SIGKILL the whole group if it does not come in time."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the program and every process it started, as a crash of its machine would."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def stop_together(processes: list[Managed]) -> None:
    """SIGTERM them all at once, then wait for each: the slowest sets the pace, not the sum."""
    for process in processes:
        process._terminate()
    for process in processes:
        process._await_exit()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, process: Managed | None = None) -> None:
    """Poll `condition` until it holds; fail with `what` (and the process's log) when time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise ClusterError(f"{process.name} exited while waiting for {what}:\n{process.log_tail()}")
        if condition():
            return
        time.sleep(0.1)  # polling interval
    log = f":\n{process.log_tail()}" if process is not None else ""
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{log}")


def http_ok(url: str) -> bool:
    """Whether GET `url` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
