"""/metrics: Prometheus text with requests by route and status, latency, bookings, pool in use."""

import pytest

from app.web import metrics
from tests.helpers.api import NIL_UUID
from tests.helpers.metrics import sample, scrape


def test_requests_are_counted_and_timed_by_route_not_by_raw_path(client):
    route = {"endpoint": "/api/status/<event_id>", "method": "GET", "status": "404"}
    before = scrape(client)
    for event_id in (NIL_UUID, "other", "yet-another"):
        client.get(f"/api/status/{event_id}")
    after = scrape(client)
    assert sample(after, "http_requests_total", **route) - sample(before, "http_requests_total", **route) == 3
    timed = sample(after, "http_request_duration_seconds_count", **route)
    assert timed - sample(before, "http_request_duration_seconds_count", **route) == 3
    assert not any("other" in str(labels) for _, labels in after)


def test_unknown_paths_share_one_label(client):
    client.get("/no/such/path/12345")
    assert sample(scrape(client), "http_requests_total", endpoint="unmatched", method="GET", status="404") >= 1


def test_bookings_are_counted_by_outcome(client, new_event):
    event = new_event(1)
    before = scrape(client)
    for user in ("first", "second"):
        client.post("/api/book", json={"eventId": event["id"], "userId": user})
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "first"})
    after = scrape(client)
    for outcome in metrics.BOOKING_OUTCOMES:
        assert sample(after, "bookings_total", outcome=outcome) - sample(before, "bookings_total", outcome=outcome) == 1


def test_refused_bookings_are_not_counted(client, new_event):
    event = new_event(1)
    client.post("/api/book", json={"eventId": event["id"], "userId": "once"})
    before = sample(scrape(client), "bookings_total", outcome="confirmed")
    client.post("/api/book", json={"eventId": event["id"], "userId": "once"})  # 409 already_booked
    assert sample(scrape(client), "bookings_total", outcome="confirmed") == before


def test_pool_gauge_follows_connections_checked_out(app, client):
    idle = sample(scrape(client), "db_pool_connections_in_use")
    with app.extensions["database"].connect():
        assert sample(scrape(client), "db_pool_connections_in_use") == idle + 1
    assert sample(scrape(client), "db_pool_connections_in_use") == idle


@pytest.mark.parametrize("outcome", metrics.BOOKING_OUTCOMES)
def test_every_booking_outcome_is_exported_from_the_start(client, outcome):
    assert ("bookings_total", frozenset({("outcome", outcome)})) in scrape(client)


def test_with_a_multiprocess_folder_metrics_are_read_from_the_workers_files(client, monkeypatch, tmp_path):
    client.get("/healthz")  # counted in this process, which writes no files: it was not started so
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert not any(name == "http_requests_total" for name, _ in scrape(client))
