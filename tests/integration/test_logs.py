"""JSON log lines: one per request with what it was about, one per domain event, and no secrets."""

import json

import pytest

from app.booking import services
from tests.helpers.api import ADMIN_TOKEN, NIL_UUID


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def lines_of(capsys, client_request_id) -> list[dict]:
    """The log lines of the request that sent this X-Request-ID."""
    return [line for line in log_lines(capsys) if line.get("client_request_id") == client_request_id]


def test_request_line_names_the_event_and_user_of_a_body(client, new_event, capsys):
    event = new_event(1)
    capsys.readouterr()
    client.post("/api/book", json={"eventId": event["id"], "userId": "ana"}, headers={"X-Request-ID": "book-1"})
    (request_line,) = [line for line in lines_of(capsys, "book-1") if line["event"] == "request"]
    assert request_line["event_id"] == event["id"] and request_line["user_id"] == "ana"
    assert (request_line["method"], request_line["path"], request_line["status"]) == ("POST", "/api/book", 201)
    assert request_line["duration_ms"] >= 0 and request_line["client"] == "127.0.0.1"


def test_request_line_names_the_event_and_user_of_a_path(client, capsys):
    client.get(f"/api/booking-status/{NIL_UUID}/bob", headers={"X-Request-ID": "path-1"})
    (request_line,) = [line for line in lines_of(capsys, "path-1") if line["event"] == "request"]
    assert (request_line["event_id"], request_line["user_id"], request_line["status"]) == (NIL_UUID, "bob", 404)


def test_every_line_of_a_request_carries_its_id(client, new_event, capsys):
    event = new_event(1)
    capsys.readouterr()
    client.post("/api/book", json={"eventId": event["id"], "userId": "ana"}, headers={"X-Request-ID": "ids-1"})
    lines = log_lines(capsys)
    assert [line["event"] for line in lines] == ["booked", "request"]
    assert all(line["client_request_id"] == "ids-1" and line["level"] == "info" for line in lines)
    assert len({line["request_id"] for line in lines}) == 1  # and the server's own id, the same in each


def test_domain_events_are_logged_once_each(client, new_event, capsys):
    event = new_event(1)
    client.post("/api/book", json={"eventId": event["id"], "userId": "first"})
    client.post("/api/book", json={"eventId": event["id"], "userId": "second"})
    capsys.readouterr()
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "first"}, headers={"X-Request-ID": "c-1"})
    cancelled, promoted, request_line = lines_of(capsys, "c-1")
    assert (cancelled["event"], cancelled["user_id"], cancelled["event_id"]) == ("cancelled", "first", event["id"])
    assert (promoted["event"], promoted["user_id"], promoted["event_id"]) == ("promoted", "second", event["id"])
    assert request_line["user_id"] == "first"  # the request's subject again, not the promoted user


def test_a_cancel_that_promotes_several_bookings_logs_each_promotion(client, new_event, capsys):
    event = new_event(2)
    for user, quantity in (("holder", 2), ("one", 1), ("two", 1)):
        client.post("/api/book", json={"eventId": event["id"], "userId": user, "quantity": quantity})
    capsys.readouterr()
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "holder"}, headers={"X-Request-ID": "c-2"})
    lines = lines_of(capsys, "c-2")
    assert [(line["event"], line["user_id"]) for line in lines[:3]] == [
        ("cancelled", "holder"),
        ("promoted", "one"),
        ("promoted", "two"),
    ]


def test_a_partial_cancel_is_logged_as_reduced_with_the_tickets_kept(client, new_event, capsys):
    event = new_event(5)
    client.post("/api/book", json={"eventId": event["id"], "userId": "group", "quantity": 4})
    capsys.readouterr()
    client.post(
        "/api/cancel", json={"eventId": event["id"], "userId": "group", "quantity": 1}, headers={"X-Request-ID": "r-1"}
    )
    reduced = lines_of(capsys, "r-1")[0]
    assert (reduced["event"], reduced["user_id"], reduced["quantity"]) == ("reduced", "group", 3)


def test_joining_the_waiting_list_is_logged_with_the_place(client, new_event, capsys):
    event = new_event(1)
    client.post("/api/book", json={"eventId": event["id"], "userId": "first"})
    capsys.readouterr()
    client.post("/api/book", json={"eventId": event["id"], "userId": "late"}, headers={"X-Request-ID": "w-1"})
    waitlisted = lines_of(capsys, "w-1")[0]
    assert (waitlisted["event"], waitlisted["user_id"], waitlisted["waiting_position"]) == ("waitlisted", "late", 1)


def test_a_refused_booking_logs_no_domain_event(client, new_event, capsys):
    event = new_event(1)
    client.post("/api/book", json={"eventId": event["id"], "userId": "once"})
    capsys.readouterr()
    client.post("/api/book", json={"eventId": event["id"], "userId": "once"}, headers={"X-Request-ID": "dup-1"})
    assert [line["event"] for line in lines_of(capsys, "dup-1")] == ["request"]


def test_a_500_logs_its_traceback_with_the_request_id_and_no_local_variables(client, monkeypatch, capsys):
    def explode(engine, *_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "get_event", explode)
    client.get(f"/api/status/{NIL_UUID}", headers={"X-Request-ID": "trace-1"})
    (error,) = [line for line in lines_of(capsys, "trace-1") if line["event"] == "unhandled_exception"]
    assert error["level"] == "error" and error["exception"][0]["exc_value"] == "boom"
    assert all("locals" not in frame for frame in error["exception"][0]["frames"])


@pytest.mark.parametrize("token", [ADMIN_TOKEN, "a-wrong-token-that-is-also-secret"])
def test_no_token_or_authorization_header_reaches_a_log_line(client, monkeypatch, capsys, token):
    def explode(*_args):
        raise RuntimeError("failure while the token is in the request")

    for failing in (False, True):  # a success or a 401, then an unexpected failure with its traceback
        if failing:
            monkeypatch.setattr(services, "OpenEvent", explode)
        client.post("/api/initialize", json={"totalTickets": 1}, headers={"Authorization": f"Bearer {token}"})
    output = capsys.readouterr().out
    assert '"request"' in output and token not in output and "Bearer" not in output


def test_offers_are_logged_as_offered_declined_and_accepted(client, new_event, capsys):
    event = new_event(1, promotion="offer", offerTtlSeconds=60)
    for user in ("holder", "first", "second"):
        client.post("/api/book", json={"eventId": event["id"], "userId": user})
    capsys.readouterr()
    for step, (path, user) in enumerate((("cancel", "holder"), ("decline", "first"), ("accept", "second"))):
        client.post(
            f"/api/{path}", json={"eventId": event["id"], "userId": user}, headers={"X-Request-ID": f"o-{step}"}
        )
    lines = log_lines(capsys)
    told = [
        [(line["event"], line["user_id"]) for line in lines if line.get("client_request_id") == f"o-{step}"][:-1]
        for step in range(3)
    ]  # each request's lines but its request line
    assert told == [
        [("cancelled", "holder"), ("offered", "first")],
        [("declined", "first"), ("offered", "second")],
        [("accepted", "second")],
    ]
