"""The web server on a free port, for the length of a `with`: gunicorn as `make run` starts it (gunicorn.conf.py),
or granian, which `make bench` compares with it (BENCH_SERVERS; docs/performance.md, issue 24)."""

from __future__ import annotations

import os
import random
import runpy
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from unittest import mock

import psutil
from cryptography.fernet import Fernet

from app.config import Config
from bench.settings import ROOT

READY_TIMEOUT_S = 60
START_ATTEMPTS = 5
# Linux hands out client ports from 32768 up (net.ipv4.ip_local_port_range): wrk's 64 connections
# could take a port picked there between our check and gunicorn's bind.
SERVER_PORTS = (20000, 32000)
# granian's blocking threads and requests in progress per worker, unless WEB_THREADS, WEB_BACKPRESSURE say
# otherwise: the best of the A/B runs in docs/performance.md (issue 24).
GRANIAN_THREADS = 16
GRANIAN_BACKPRESSURE = 128


class Server:
    """One web server serving `app_spec` ("module:variable") with the production settings."""

    name: str

    def __init__(self, app_spec: str, database_url: str, log_path: Path, extra_env: dict | None = None) -> None:
        self.app_spec = app_spec
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "ADMIN_TOKEN": secrets.token_urlsafe(24),
            "RATE_LIMIT": "",  # a load test from one address is exactly what a rate limit stops
            "AUTH_MODE": "open",  # unless extra_env says otherwise (hot-jwt)
            # hot-webhook: a key of the bench's own, shared with its dispatcher (bench/webhooks.py), and
            # a receiver on loopback, which the SSRF guard refuses otherwise
            "WEBHOOK_SECRET_KEY": Fernet.generate_key().decode(),
            "WEBHOOK_ALLOW_PRIVATE": "true",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def __enter__(self) -> Server:
        for _attempt in range(START_ATTEMPTS):
            self.env["PORT"] = str(_free_port())
            if self._start():
                return self
        raise RuntimeError(f"{self.name} did not start in {START_ATTEMPTS} attempts; see {self.log_path}")

    def _start(self) -> bool:
        """Start the server; False if it exited at once (its port was taken in the meantime)."""
        with open(self.log_path, "ab") as log:  # the app's JSON access log, as production writes it
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        return self._await_ready()

    def __exit__(self, *_exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def processes(self) -> list[psutil.Process]:
        """The master and its workers, whose CPU time is the server's."""
        master = psutil.Process(self.process.pid)
        return [master, *master.children(recursive=True)]

    def command(self) -> list[str]:
        raise NotImplementedError

    def settings(self) -> dict:
        """The server's settings under our environment, and the app's."""
        return {
            "server": self.name,
            **self.server_settings(),
            "write_concurrency": int(self.env.get("WRITE_CONCURRENCY") or Config.write_concurrency),
            "db_pool_size_per_worker": int(self.env.get("DB_POOL_SIZE") or Config.db_pool_size),
            "app": self.app_spec,
        }

    def server_settings(self) -> dict:
        raise NotImplementedError

    def _await_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return True
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {READY_TIMEOUT_S}s; see {self.log_path}")


class Gunicorn(Server):
    name = "gunicorn"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", self.app_spec]

    def server_settings(self) -> dict:
        """What gunicorn.conf.py gives under our environment."""
        with mock.patch.dict(os.environ, self.env):
            conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
        return {"worker_class": conf["worker_class"], "workers": conf["workers"]}


class Granian(Server):
    """granian's WSGI interface: its Rust runtime parses HTTP and holds the connections, and hands each
    request to one of a worker's blocking threads, which runs the Flask app (group commit and admission
    use threading's primitives, which work on real threads as on gevent's patched ones). No psycopg2 wait
    callback: a thread waiting for PostgreSQL releases the GIL. WEB_CONCURRENCY workers (one per core),
    WEB_THREADS blocking threads each, WEB_BACKPRESSURE requests in progress each."""

    name = "granian"

    def command(self) -> list[str]:
        settings = self.server_settings()
        return [
            *(sys.executable, "-m", "granian", "--interface", "wsgi", "--http", "1", "--no-ws"),
            *("--host", "0.0.0.0", "--port", self.env["PORT"], "--log-level", "warning"),
            *("--workers", str(settings["workers"]), "--blocking-threads", str(settings["blocking_threads"])),
            *("--backpressure", str(settings["backpressure"]), "--workers-kill-timeout", "30"),
            self.app_spec,
        ]

    def server_settings(self) -> dict:
        return {
            "workers": int(self.env.get("WEB_CONCURRENCY") or os.cpu_count() or 2),
            "blocking_threads": int(self.env.get("WEB_THREADS") or GRANIAN_THREADS),
            "backpressure": int(self.env.get("WEB_BACKPRESSURE") or GRANIAN_BACKPRESSURE),
        }


SERVERS = {server.name: server for server in (Gunicorn, Granian)}


def _free_port() -> int:
    """A free port below the ephemeral range, which the load generator's own sockets draw from."""
    while True:
        port = random.randrange(*SERVER_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
