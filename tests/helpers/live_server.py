"""The real server for tests and the chaos harness: gunicorn with the project's own settings, on a
free port, and plain HTTP calls to it (urllib: no client library between us and the wire)."""

from __future__ import annotations

import http.client
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from app.config import PROJECT_ROOT
from app.observability.metrics import MULTIPROC_DIR_VARIABLE

STARTUP_DEADLINE_S = 20
GRACEFUL_TIMEOUT_S = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))["graceful_timeout"]
# The master stops waiting for workers after the graceful timeout; it needs a moment more to exit.
EXIT_MARGIN_S = 5
REQUEST_TIMEOUT_S = 5
E2E_ADMIN_TOKEN = "e2e-admin-token-fedcba9876543210"  # the live servers' own, apart from the in-process apps'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # where gunicorn binds
        return sock.getsockname()[1]


def call(
    base_url: str,
    method: str,
    path: str,
    body: dict | None = None,
    token: str | None = None,
    headers: dict | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
):
    """One HTTP request; (status, response headers, parsed JSON body), also for error statuses.

    Raises OSError (refused, reset, timed out) when no response arrives, http.client.HTTPException
    when it is cut off.
    """
    headers = {**({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")  # a 204's None
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, json.loads(error.read() or b"null")


def post_chunked(base_url: str, path: str, raw: bytes, chunk_bytes: int = 8192) -> tuple[int, dict]:
    """POST `raw` as JSON with `Transfer-Encoding: chunked` (no Content-Length); (status, parsed JSON body)."""
    connection = http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=REQUEST_TIMEOUT_S)
    chunks = (raw[start : start + chunk_bytes] for start in range(0, len(raw), chunk_bytes))
    try:
        connection.request("POST", path, body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def exchange(port: int, data: bytes, timeout: float = REQUEST_TIMEOUT_S) -> tuple[http.client.HTTPResponse, bytes]:
    """Send `data` as it is, byte for byte, on a new connection; the response and its body.

    For what a client library refuses to send: oversized lines, malformed headers, bad framing.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        response = read_response(sock)
        return response, response.read()


def read_response(sock: socket.socket) -> http.client.HTTPResponse:
    """The HTTP response arriving on `sock`, its status and headers read (its body is left to read)."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response


class Gunicorn:
    """`gunicorn -c gunicorn.conf.py wsgi:app` on a free port, logging to `log_path`."""

    def __init__(
        self, database_url: str, admin_token: str, log_path: Path, workers: int = 2, settings: dict | None = None
    ) -> None:
        """`settings`: more environment variables for the server (RATE_LIMIT, ...)."""
        self.port, self.log_path = free_port(), Path(log_path)
        self.base_url = f"http://127.0.0.1:{self.port}"
        metrics_dir = self.log_path.parent / "metrics"  # one for the workers to share, as `make run` sets
        metrics_dir.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "DATABASE_URL": database_url,
            "ADMIN_TOKEN": admin_token,
            "WEB_CONCURRENCY": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **(settings or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it and return once /healthz answers; a new session, so that `kill` reaches the workers too."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.wait_until_healthy()
        except AssertionError:
            self.kill()
            raise

    def wait_until_healthy(self) -> None:
        """Poll /healthz until it answers 200; fail if the server dies or the deadline passes."""
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                if call(self.base_url, "GET", "/healthz", timeout=1)[0] == 200:
                    return
            except OSError:  # not listening yet, or no worker yet
                pass
            time.sleep(0.1)  # polling interval, not ordering
        raise AssertionError(f"gunicorn did not answer /healthz within {STARTUP_DEADLINE_S}s:\n{self.log()}")

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def stop(self) -> int:
        """SIGTERM, then wait for the exit within the graceful timeout; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=GRACEFUL_TIMEOUT_S + EXIT_MARGIN_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"gunicorn did not stop within its graceful timeout:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL the master and its workers at once, as a crash or an OOM kill would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class DispatcherProcess:
    """`python -m app.workers` as its own process, as `make run` or an operator starts it."""

    def __init__(self, database_url: str, log_path: Path, settings: dict | None = None) -> None:
        self.log_path = Path(log_path)
        self.env = {**os.environ, "DATABASE_URL": database_url, "WEBHOOK_POLL_INTERVAL_S": "0.05", **(settings or {})}
        self.env.pop(MULTIPROC_DIR_VARIABLE, None)
        self.process: subprocess.Popen | None = None

    def start(self) -> DispatcherProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.workers"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no goodbye, its claims left to expire."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


# `make run`'s launcher with its instance/ folder (admin token, metrics, embedded PostgreSQL, lock) elsewhere.
LAUNCH = (
    "import sys; from pathlib import Path; from app.operations import serve; "
    "serve.INSTANCE_DIR = Path(sys.argv[1]); sys.exit(serve.main(['serve']))"
)


class Launcher:
    """`python -m app.operations.serve` as `make run` runs it, on a free port, its messages collected."""

    def __init__(
        self, instance_dir: Path, database_url: str | None, admin_token: str, settings: dict | None = None
    ) -> None:
        """`settings`: more environment variables for the server and its dispatcher (AUTH_MODE, ...)."""
        self.port, self.instance_dir = free_port(), instance_dir
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PORT": str(self.port), "ADMIN_TOKEN": admin_token, "WEB_CONCURRENCY": "2"}
        for name in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
            self.env.pop(name, None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.env.update(settings or {})
        self.lines: list[str] = []
        self.process: subprocess.Popen | None = None
        self.known: list[psutil.Process] = []

    def start(self) -> Launcher:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(self.instance_dir)],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._collect, daemon=True)
        self.reader.start()
        return self

    def _collect(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def messages(self) -> str:
        return "".join(self.lines)

    def server_processes(self) -> list[psutil.Process]:
        """gunicorn's master and workers, and the webhook dispatcher (the embedded PostgreSQL detaches: not
        among them), remembered so that kill() finds them even once they are orphaned."""
        self.known = psutil.Process(self.process.pid).children(recursive=True)
        return self.known

    def dispatcher(self) -> psutil.Process:
        """The webhook dispatcher it started (which also sweeps expired offers)."""
        return next(process for process in self.server_processes() if "app.workers" in process.cmdline())

    def kill(self) -> None:
        """SIGKILL the launcher and whatever it started that still runs."""
        if self.process.poll() is None:
            self.server_processes()
            self.process.kill()
        for process in running(self.known):
            process.kill()
        self.process.wait()
        self.reader.join(timeout=STARTUP_DEADLINE_S)  # its pipe ends once all of them are gone
        self.process.stderr.close()


def running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` still running (a zombie, dead and not yet reaped, is not)."""
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive
