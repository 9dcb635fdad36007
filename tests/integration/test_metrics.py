"""/metrics: Prometheus text with requests by route and status, latency, bookings, pool in use."""

import pytest

from app.booking.metrics import BOOKING_OUTCOMES
from app.web import metrics
from tests.helpers.api import NIL_UUID, assert_problem
from tests.helpers.metrics import sample, scrape

METRICS_TOKEN = "metrics-token-0123456789abcdef0123456789"


def test_requests_are_counted_and_timed_by_route_not_by_raw_path(client):
    route = {"endpoint": "/api/status/<event_id>", "method": "GET", "status": "404"}
    before = scrape(client)
    for event_id in (NIL_UUID, "raw-path-one", "raw-path-two"):
        client.get(f"/api/status/{event_id}")
    after = scrape(client)
    assert sample(after, "http_requests_total", **route) - sample(before, "http_requests_total", **route) == 3
    timed = sample(after, "http_request_duration_seconds_count", **route)
    assert timed - sample(before, "http_request_duration_seconds_count", **route) == 3
    # Ids no label holds: not "other", which is the method label of unknown methods.
    assert not any("raw-path" in str(labels) for _, labels in after)


def test_unknown_paths_share_one_label(client):
    client.get("/no/such/path/12345")
    assert sample(scrape(client), "http_requests_total", endpoint="unmatched", method="GET", status="404") >= 1


def test_methods_a_client_invents_share_one_label(client):
    for n in range(30):
        client.open("/api/book", method=f"INVENTED{n}")
        client.open("/nowhere", method=f"INVENTED{n}")
    methods = {dict(labels).get("method") for name, labels in scrape(client) if name == "http_requests_total"}
    assert methods <= metrics.KNOWN_METHODS | {"other"} and "other" in methods


def test_a_wrong_method_on_a_route_is_counted_under_that_route(client):
    labels = {"endpoint": "/api/status/<event_id>", "method": "POST", "status": "405"}
    before = sample(scrape(client), "http_requests_total", **labels)
    client.post(f"/api/status/{NIL_UUID}", json={})
    assert sample(scrape(client), "http_requests_total", **labels) == before + 1


@pytest.fixture
def metrics_client(make_app):
    """A client of an app with the given settings."""
    return lambda **settings: make_app(**settings).test_client()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}"])
def test_with_a_metrics_token_a_scrape_without_it_is_a_401(metrics_client, authorization):
    client = metrics_client(metrics_token=METRICS_TOKEN)
    response = client.get("/metrics", headers={"Authorization": authorization} if authorization else {})
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_with_a_metrics_token_a_scrape_with_it_is_answered(metrics_client):
    client = metrics_client(metrics_token=METRICS_TOKEN)
    assert ("bookings_total", frozenset({("outcome", "confirmed")})) in scrape(
        client, {"Authorization": f"Bearer {METRICS_TOKEN}"}
    )


def test_in_production_metrics_want_the_admin_token_when_no_metrics_token_is_set(metrics_client, config):
    client = metrics_client(app_env="production")
    assert_problem(client.get("/metrics"), 401, "unauthorized")
    assert scrape(client, {"Authorization": f"Bearer {config.admin_token}"})


def test_in_production_a_metrics_token_replaces_the_admin_token(metrics_client, config):
    client = metrics_client(app_env="production", metrics_token=METRICS_TOKEN)
    assert_problem(
        client.get("/metrics", headers={"Authorization": f"Bearer {config.admin_token}"}), 401, "unauthorized"
    )


def test_bookings_are_counted_by_outcome(client, new_event):
    event = new_event(2)
    before = scrape(client)
    client.post("/api/book", json={"eventId": event["id"], "userId": "first", "quantity": 2})
    client.post("/api/book", json={"eventId": event["id"], "userId": "second"})
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "first", "quantity": 1})  # reduced, promoted
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "first"})
    after = scrape(client)
    for outcome in ("confirmed", "waiting", "cancelled", "reduced", "promoted"):
        assert sample(after, "bookings_total", outcome=outcome) - sample(before, "bookings_total", outcome=outcome) == 1


def test_offers_are_counted_as_offered_declined_and_accepted(client, new_event):
    event = new_event(1, promotion="offer", offerTtlSeconds=60)
    for user in ("holder", "first", "second"):
        client.post("/api/book", json={"eventId": event["id"], "userId": user})
    before = scrape(client)
    for path, user in (("cancel", "holder"), ("decline", "first"), ("accept", "second")):
        client.post(f"/api/{path}", json={"eventId": event["id"], "userId": user})
    after = scrape(client)

    counted = {
        outcome: sample(after, "bookings_total", outcome=outcome) - sample(before, "bookings_total", outcome=outcome)
        for outcome in ("cancelled", "offered", "declined", "accepted", "promoted")
    }
    assert counted == {"cancelled": 1, "offered": 2, "declined": 1, "accepted": 1, "promoted": 0}


def test_a_cancel_counts_every_booking_it_promotes(client, new_event):
    event = new_event(2)
    for user, quantity in (("holder", 2), ("one", 1), ("two", 1)):
        client.post("/api/book", json={"eventId": event["id"], "userId": user, "quantity": quantity})
    before = sample(scrape(client), "bookings_total", outcome="promoted")
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "holder"})
    assert sample(scrape(client), "bookings_total", outcome="promoted") - before == 2


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


@pytest.mark.parametrize("outcome", BOOKING_OUTCOMES)
def test_every_booking_outcome_is_exported_from_the_start(client, outcome):
    assert ("bookings_total", frozenset({("outcome", outcome)})) in scrape(client)


def test_with_a_multiprocess_folder_metrics_are_read_from_the_workers_files(client, monkeypatch, tmp_path):
    client.get("/healthz")  # counted in this process, which writes no files: it was not started so
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert not any(name == "http_requests_total" for name, _ in scrape(client))
