"""`python -m app.workers` on its own: its probe, its metrics, and a clean stop on SIGTERM."""

import urllib.request

from tests.helpers.api import WEBHOOK_SECRET_KEY
from tests.helpers.live_server import DispatcherProcess, free_port
from tests.helpers.waiting import wait_until


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


def test_a_dispatcher_alone_serves_its_health_and_metrics_and_stops_on_sigterm(database_url, scratch):
    port = free_port()
    dispatcher = DispatcherProcess(
        database_url,
        scratch / "dispatcher.log",
        {
            "WEBHOOK_SECRET_KEY": WEBHOOK_SECRET_KEY,
            "WEBHOOK_DISPATCHER_PORT": str(port),
            "ADMIN_TOKEN": "unused",
        },
    ).start()
    try:
        wait_until(lambda: fetch(f"http://127.0.0.1:{port}/healthz")[0] == 200, "the dispatcher reports healthy")
        status, metrics = fetch(f"http://127.0.0.1:{port}/metrics")
    finally:
        code = dispatcher.stop()

    assert status == 200 and "webhook_messages_delivered_total" in metrics
    assert "webhook_oldest_pending_message_age_seconds" in metrics
    assert code == 0
