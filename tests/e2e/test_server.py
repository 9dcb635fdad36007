"""The real server: gunicorn with the project's own settings, spoken to over real HTTP."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.api import padded
from tests.helpers.live_server import E2E_ADMIN_TOKEN, REQUEST_TIMEOUT_S, Gunicorn, call, post_chunked


@pytest.fixture
def gunicorn(database_url, tmp_path):
    """gunicorn serving the app on a free port of its own; checked to stop cleanly afterwards."""
    server = Gunicorn(database_url, E2E_ADMIN_TOKEN, tmp_path / "gunicorn.log")
    server.start()
    yield server
    if server.process.poll() is None:
        assert server.stop() == 0, server.log()


@pytest.fixture
def server_base_url(gunicorn):
    return gunicorn.base_url


def test_server_books_queues_promotes_and_reports_over_http(server_base_url):
    def post(path, body, token=None):
        status, _, parsed = call(server_base_url, "POST", path, body, token)
        return status, parsed

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

    status, _, event = call(server_base_url, "GET", f"/api/status/{event_id}")
    assert status == 200, event
    assert {key: event["event"][key] for key in ("availableTickets", "bookedTickets", "waitingListCount")} == {
        "availableTickets": 0,
        "bookedTickets": 1,
        "waitingListCount": 0,
    }
    status, _, promoted = call(server_base_url, "GET", f"/api/booking-status/{event_id}/second")
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


def test_chunked_body_over_the_limit_is_a_413_over_http_and_one_of_the_limit_is_booked(server_base_url):
    event_id = call(server_base_url, "POST", "/api/initialize", {"totalTickets": 5}, E2E_ADMIN_TOKEN)[2]["event"]["id"]
    limit = 65536  # MAX_BODY_BYTES's default
    # Its first `limit` bytes are a valid booking: cut there, it used to be booked.
    over = padded({"eventId": event_id, "userId": "cut"}, limit) + b'{"more": "bytes"}'
    status, problem = post_chunked(server_base_url, "/api/book", over)
    assert (status, problem["code"]) == (413, "payload_too_large")

    status, booked = post_chunked(server_base_url, "/api/book", padded({"eventId": event_id, "userId": "whole"}, limit))
    assert (status, booked["booking"]["userId"]) == (201, "whole")
    assert call(server_base_url, "GET", f"/api/status/{event_id}")[2]["event"]["bookedTickets"] == 1


def test_a_user_id_that_is_not_utf8_is_a_400_over_http(server_base_url):
    event_id = call(server_base_url, "POST", "/api/initialize", {"totalTickets": 5}, E2E_ADMIN_TOKEN)[2]["event"]["id"]
    assert call(server_base_url, "POST", "/api/book", {"eventId": event_id, "userId": "\ufffd"})[0] == 201
    status, _, problem = call(server_base_url, "GET", f"/api/booking-status/{event_id}/%ff")
    assert (status, problem["code"]) == (400, "invalid_request")
