"""The real server: gunicorn with the project's own settings, spoken to over real HTTP."""

from __future__ import annotations

import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.config import PROJECT_ROOT

E2E_ADMIN_TOKEN = "e2e-admin-token-fedcba9876543210"
STARTUP_DEADLINE_S = 20
GRACEFUL_TIMEOUT_S = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))["graceful_timeout"]
# The master stops waiting for workers after the graceful timeout; it needs a moment more to exit.
EXIT_MARGIN_S = 5
REQUEST_TIMEOUT_S = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # where gunicorn binds
        return sock.getsockname()[1]


def call(base_url: str, method: str, path: str, body: dict | None = None, token: str | None = None):
    """One HTTP request; (status, parsed JSON body), also for error statuses."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def wait_until_healthy(base_url: str, server: subprocess.Popen, log_path) -> None:
    """Poll /healthz until it answers 200, the server dies, or the deadline passes."""
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"gunicorn exited with {server.returncode}:\n{log_path.read_text()}"
        try:
            if call(base_url, "GET", "/healthz")[0] == 200:
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.1)  # polling interval, not ordering
    pytest.fail(f"gunicorn did not answer /healthz within {STARTUP_DEADLINE_S}s:\n{log_path.read_text()}")


def stop(server: subprocess.Popen, log_path) -> None:
    """SIGTERM, then insist on a clean exit within the graceful timeout."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        returncode = server.wait(timeout=GRACEFUL_TIMEOUT_S + EXIT_MARGIN_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        pytest.fail(f"gunicorn did not stop within its graceful timeout:\n{log_path.read_text()}")
    assert returncode == 0, f"gunicorn exited with {returncode}:\n{log_path.read_text()}"


@pytest.fixture
def server_base_url(database_url, tmp_path):
    """gunicorn serving the app on a free port of its own; stopped, and checked to stop cleanly, afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "ADMIN_TOKEN": E2E_ADMIN_TOKEN,
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),  # as `make run` sets it
    }
    (tmp_path / "metrics").mkdir()
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, server, log_path)
        yield base_url
    finally:
        stop(server, log_path)


def test_server_books_queues_promotes_and_reports_over_http(server_base_url):
    def post(path, body, token=None):
        return call(server_base_url, "POST", path, body, token)

    status, created = post("/api/initialize", {"totalTickets": 1, "name": "e2e"}, E2E_ADMIN_TOKEN)
    assert status == 201, created
    event_id = created["event"]["id"]

    first = post("/api/book", {"eventId": event_id, "userId": "first"})
    second = post("/api/book", {"eventId": event_id, "userId": "second"})
    assert (first[0], first[1]["booking"]["status"]) == (201, "confirmed")
    assert (second[0], second[1]["booking"]["status"], second[1]["booking"]["waitingPosition"]) == (
        201,
        "waiting",
        1,
    )

    status, cancelled = post("/api/cancel", {"eventId": event_id, "userId": "first"})
    assert status == 200, cancelled
    assert (cancelled["booking"]["status"], cancelled["promoted"]["userId"]) == ("cancelled", "second")

    status, event = call(server_base_url, "GET", f"/api/status/{event_id}")
    assert status == 200, event
    assert {key: event["event"][key] for key in ("availableTickets", "bookedTickets", "waitingListCount")} == {
        "availableTickets": 0,
        "bookedTickets": 1,
        "waitingListCount": 0,
    }
    status, promoted = call(server_base_url, "GET", f"/api/booking-status/{event_id}/second")
    assert (status, promoted["booking"]["status"], promoted["booking"]["waitingPosition"]) == (200, "confirmed", None)


def test_metrics_add_up_the_requests_that_every_worker_answered(server_base_url):
    requests = 20  # each on a connection of its own, which either worker may accept
    for _ in range(requests):
        assert call(server_base_url, "GET", "/api/status/00000000-0000-0000-0000-000000000000")[0] == 404
    with urllib.request.urlopen(server_base_url + "/metrics", timeout=REQUEST_TIMEOUT_S) as response:
        families = text_string_to_metric_families(response.read().decode())
    answered = sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels["endpoint"] == "/api/status/<event_id>"
    )
    assert answered == requests
