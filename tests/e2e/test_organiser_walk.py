"""An organiser's walk over real HTTP against gunicorn: resize in queue order, close sales, export, call off."""

from __future__ import annotations

import csv
import io
import urllib.request

import pytest

from tests.helpers.api import as_csv_text
from tests.helpers.live_server import E2E_ADMIN_TOKEN, REQUEST_TIMEOUT_S, Gunicorn, call


@pytest.fixture
def server(database_url, tmp_path):
    server = Gunicorn(database_url, E2E_ADMIN_TOKEN, tmp_path / "gunicorn.log")
    server.start()
    yield server.base_url
    assert server.stop() == 0, server.log()


def admin(base_url: str, method: str, path: str, body: dict | None = None):
    status, _, parsed = call(base_url, method, path, body, E2E_ADMIN_TOKEN)
    return status, parsed


def csv_export(base_url: str, path: str) -> tuple[str, list[dict]]:
    headers = {"Authorization": f"Bearer {E2E_ADMIN_TOKEN}", "Accept": "text/csv"}
    with urllib.request.urlopen(
        urllib.request.Request(base_url + path, headers=headers), timeout=REQUEST_TIMEOUT_S
    ) as r:
        return r.headers["Transfer-Encoding"], list(csv.DictReader(io.StringIO(r.read().decode())))


def test_an_organiser_resizes_closes_exports_and_calls_off_an_event_over_http(server):
    _, opened = admin(server, "POST", "/api/initialize", {"totalTickets": 1, "name": "walk"})
    event_id = opened["event"]["id"]
    for user in ("holder", "w1", "w2", "w3"):
        call(server, "POST", "/api/book", {"eventId": event_id, "userId": user})

    status, resized = admin(server, "PATCH", f"/api/events/{event_id}", {"totalTickets": 3})
    assert (status, [b["userId"] for b in resized["promotedBookings"]]) == (200, ["w1", "w2"])
    assert admin(server, "PATCH", f"/api/events/{event_id}", {"salesOpen": False})[1]["event"]["salesOpen"] is False
    assert call(server, "POST", "/api/book", {"eventId": event_id, "userId": "late"})[2]["code"] == "sales_closed"

    _, page = admin(server, "GET", f"/api/events/{event_id}/bookings?limit=10")
    encoding, exported = csv_export(server, f"/api/events/{event_id}/bookings")
    assert encoding == "chunked"  # streamed, not buffered to a Content-Length
    assert exported == as_csv_text(page["bookings"])

    status, called_off = admin(server, "POST", f"/api/events/{event_id}/cancel")
    assert (status, called_off["event"]["status"]) == (200, "cancelled")
    _, listed = admin(server, "GET", "/api/events?status=cancelled&limit=1")
    assert listed["events"][0]["id"] == event_id
