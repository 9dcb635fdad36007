"""Every error row of the contract: problem+json with a stable code, and nothing changed."""

import json

import pytest
from sqlalchemy import text

from app.booking import services
from app.booking.domain import MAX_TOTAL_TICKETS
from tests.helpers.api import ADMIN_TOKEN, NIL_UUID, UNREACHABLE_DATABASE_URL, assert_problem


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "totalTickets"),
        ({"totalTickets": 0}, "totalTickets"),
        ({"totalTickets": MAX_TOTAL_TICKETS + 1}, "totalTickets"),
        ({"totalTickets": "5"}, "totalTickets"),
        ({"totalTickets": 5.5}, "totalTickets"),
        ({"totalTickets": True}, "totalTickets"),
        ({"totalTickets": 5, "name": ""}, "name"),
        ({"totalTickets": 5, "name": "x" * 201}, "name"),
        ({"totalTickets": 5, "name": None}, "name"),
        ({"totalTickets": 5, "name": "nul\u0000"}, "name"),
        ({"totalTickets": 5, "name": "lone \ud800 surrogate"}, "name"),
        ({"totalTickets": 5, "colour": "red"}, "colour"),
    ],
)
def test_invalid_initialize_body_is_a_400_naming_the_field(client, admin_headers, payload, field):
    body = assert_problem(client.post("/api/initialize", json=payload, headers=admin_headers), 400, "invalid_request")
    assert list(body["errors"]) == [field]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"userId": "u"}, "eventId"),
        ({"eventId": NIL_UUID}, "userId"),
        ({"eventId": NIL_UUID, "userId": ""}, "userId"),
        ({"eventId": NIL_UUID, "userId": "x" * 129}, "userId"),
        ({"eventId": NIL_UUID, "userId": "tab\there"}, "userId"),
        ({"eventId": NIL_UUID, "userId": "nul\u0000"}, "userId"),
        ({"eventId": NIL_UUID, "userId": "\ud800"}, "userId"),
        ({"eventId": NIL_UUID, "userId": 42}, "userId"),
        ({"eventId": 42, "userId": "u"}, "eventId"),
    ],
)
@pytest.mark.parametrize("path", ["/api/book", "/api/cancel"])
def test_invalid_booking_body_is_a_400_naming_the_field(client, path, payload, field):
    body = assert_problem(client.post(path, json=payload), 400, "invalid_request")
    assert list(body["errors"]) == [field]


def test_user_id_of_128_characters_is_accepted(client, new_event):
    event = new_event(1)
    response = client.post("/api/book", json={"eventId": event["id"], "userId": "ü" * 128})
    assert response.status_code == 201


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"a string"', "null"])
def test_body_that_is_not_a_json_object_is_a_400(client, raw):
    response = client.post("/api/book", data=raw, content_type="application/json")
    assert "body" in assert_problem(response, 400, "invalid_request")["errors"]


def test_empty_json_body_is_a_400_naming_the_missing_fields(client):
    response = client.post("/api/book", data="", content_type="application/json")
    assert set(assert_problem(response, 400, "invalid_request")["errors"]) == {"eventId", "userId"}


def test_invalid_request_changes_nothing(client, new_event):
    event = new_event(1)
    client.post("/api/book", json={"eventId": event["id"], "userId": "", "extra": 1})
    assert client.get(f"/api/status/{event['id']}").get_json()["event"]["availableTickets"] == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_post_that_is_not_json_is_a_415(client, content_type):
    response = client.post("/api/book", data="eventId=1", content_type=content_type)
    assert_problem(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "identity, gzip"])
def test_a_content_coded_body_is_a_415_and_books_nothing(client, new_event, coding):
    # The body is plain JSON under a Content-Encoding that says otherwise: read as it came, it was booked,
    # while a proxy that decodes the coding would have read another body (and a real gzip body was 400).
    event = new_event(1)
    body = json.dumps({"eventId": event["id"], "userId": "u"})
    response = client.post(
        "/api/book", data=body, content_type="application/json", headers={"Content-Encoding": coding}
    )
    assert "Content-Encoding" in assert_problem(response, 415, "unsupported_media_type")["detail"]
    assert response.headers["Accept-Encoding"] == "identity"
    assert client.get(f"/api/status/{event['id']}").get_json()["event"]["availableTickets"] == 1


def test_content_encoding_identity_is_a_plain_body(client, new_event):
    event = new_event(1)
    body = json.dumps({"eventId": event["id"], "userId": "u"})
    response = client.post(
        "/api/book", data=body, content_type="application/json", headers={"Content-Encoding": "identity"}
    )
    assert response.status_code == 201


def test_json_subtype_is_accepted_as_json(client, new_event):
    event = new_event(1)
    body = json.dumps({"eventId": event["id"], "userId": "u"})
    response = client.post("/api/book", data=body, content_type="application/merge-patch+json")
    assert response.status_code == 201


def test_body_over_the_limit_is_a_413(client):
    response = client.post("/api/book", data="x" * 65537, content_type="application/json")
    assert "65536" in assert_problem(response, 413, "payload_too_large")["detail"]


def test_body_limit_follows_max_body_bytes(make_app):
    small = make_app(max_body_bytes=100).test_client()
    response = small.post("/api/book", json={"eventId": NIL_UUID, "userId": "u" * 100})
    assert_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic dGVzdDp0ZXN0", "Bearer ", ADMIN_TOKEN])
def test_initialize_without_the_admin_token_is_a_401(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post("/api/initialize", json={"totalTickets": 1}, headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_empty_admin_token_admits_nobody(make_app):
    open_door = make_app(admin_token="").test_client()
    for headers in ({}, {"Authorization": "Bearer "}):
        assert_problem(
            open_door.post("/api/initialize", json={"totalTickets": 1}, headers=headers), 401, "unauthorized"
        )


def test_unauthenticated_initialize_is_refused_before_validation(client):
    assert_problem(client.post("/api/initialize", json={"totalTickets": -1}), 401, "unauthorized")


def test_bearer_scheme_is_case_insensitive(client, admin_headers):
    headers = {"Authorization": admin_headers["Authorization"].replace("Bearer", "bearer")}
    assert client.post("/api/initialize", json={"totalTickets": 1}, headers=headers).status_code == 201


@pytest.mark.parametrize("event_id", [NIL_UUID, "not-a-uuid", "", "12345", "' OR 1=1 --"])
def test_unknown_event_is_event_not_found_whatever_the_id_shape(client, event_id):
    for response in (
        client.post("/api/book", json={"eventId": event_id, "userId": "u"}),
        client.post("/api/cancel", json={"eventId": event_id, "userId": "u"}),
    ):
        assert_problem(response, 404, "event_not_found")


@pytest.mark.parametrize("event_id", [NIL_UUID, "not-a-uuid", "%20"])
def test_status_of_unknown_event_is_event_not_found(client, event_id):
    assert_problem(client.get(f"/api/status/{event_id}"), 404, "event_not_found")


def test_booking_status_with_an_invalid_user_id_is_a_400(client, new_event):
    response = client.get(f"/api/booking-status/{new_event(1)['id']}/a%00b")
    assert "user_id" in assert_problem(response, 400, "invalid_request")["errors"]


def test_unknown_path_is_a_json_404(client):
    assert_problem(client.get("/nowhere"), 404, "not_found")


def test_unknown_path_with_a_non_json_post_is_still_a_404(client):
    assert_problem(client.post("/nowhere", data="x", content_type="text/plain"), 404, "not_found")


def test_wrong_method_is_a_json_405_with_allow(client):
    response = client.get("/api/book")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unexpected_error_is_a_500_without_internals(client, monkeypatch, capsys):
    def explode(*_args):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(services, "get_event", explode)
    response = client.get(f"/api/status/{NIL_UUID}", headers={"X-Request-ID": "trace-me-500"})
    body = assert_problem(response, 500, "internal_error")
    assert "secret internal detail" not in response.get_data(as_text=True)
    log = capsys.readouterr().out
    assert "secret internal detail" in log and "trace-me-500" in log and body["requestId"] == "trace-me-500"


@pytest.fixture
def down_client(make_app):
    """An app whose database refuses connections (nothing listens on port 1)."""
    return make_app(database_url=UNREACHABLE_DATABASE_URL).test_client()


@pytest.mark.parametrize(
    "method, path, payload",
    [
        ("post", "/api/book", {"eventId": NIL_UUID, "userId": "u"}),
        ("post", "/api/cancel", {"eventId": NIL_UUID, "userId": "u"}),
        ("get", f"/api/status/{NIL_UUID}", None),
        ("get", f"/api/booking-status/{NIL_UUID}/u", None),
        ("get", "/readyz", None),
    ],
)
def test_database_down_is_a_503_with_retry_after(down_client, method, path, payload):
    response = getattr(down_client, method)(path, json=payload)
    assert_problem(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) >= 1


def test_liveness_does_not_depend_on_the_database(down_client):
    assert down_client.get("/healthz").get_json() == {"status": "ok"}


def test_readiness_is_ok_when_the_database_answers(client):
    assert client.get("/readyz").get_json() == {"status": "ok"}


def test_sane_request_id_is_echoed(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123.x:y"}).headers["X-Request-ID"] == "abc-123.x:y"


@pytest.mark.parametrize("supplied", [None, "", "has space", "x" * 129, 'quote"s', "<script>"])
def test_missing_or_insane_request_id_is_replaced(client, supplied):
    headers = {"X-Request-ID": supplied} if supplied is not None else {}
    request_id = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    assert request_id != supplied and len(request_id) == 32


# --- what an error quotes of the client's input is bounded -------------------------------------------

LONG_ID = "x" * 60_000  # near the body limit: it could be echoed, and stored with a key, in full
QUOTED_ID = "x" * 64 + "\u2026"


@pytest.mark.parametrize("path", ["/api/book", "/api/cancel"])
def test_a_404_quotes_at_most_64_characters_of_the_event_id(client, path):
    response = client.post(path, json={"eventId": LONG_ID, "userId": "u"})
    assert assert_problem(response, 404, "event_not_found")["detail"] == f"no event with id '{QUOTED_ID}'"


def test_a_404_stored_with_a_key_for_a_huge_event_id_stays_small(client, engine):
    key = "huge-event-id"
    first = client.post("/api/book", json={"eventId": LONG_ID, "userId": "u"}, headers={"Idempotency-Key": key})
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT length(body) FROM idempotency_keys WHERE key = :key"), {"key": key}).one()

    assert_problem(first, 404, "event_not_found")
    assert stored.length == len(first.get_data()) < 512


def test_a_404_on_a_path_quotes_at_most_64_characters_of_the_event_id(client):
    response = client.get(f"/api/status/{'y' * 3000}")
    assert assert_problem(response, 404, "event_not_found")["detail"] == f"no event with id '{'y' * 64}\u2026'"


def test_a_409_quotes_at_most_64_characters_of_the_user_id(client, new_event):
    event = new_event(2)
    body = {"eventId": event["id"], "userId": "u" * 128}
    client.post("/api/book", json=body)

    detail = assert_problem(client.post("/api/book", json=body), 409, "already_booked")["detail"]
    assert detail == f"{'u' * 64}\u2026 already holds a booking for this event"


def test_a_400_names_at_most_ten_unknown_fields_each_cut_to_64_characters(client):
    fields = {f"{n:02d}" + "z" * 1000: n for n in range(50)}  # 50 KB, under the body limit
    response = client.post("/api/book", json={"eventId": NIL_UUID, "userId": "u", **fields})

    named = assert_problem(response, 400, "invalid_request")["errors"]
    assert len(named) == 10 and len(response.get_data()) < 2048
    assert all(name[:2].isdigit() and name[2:] == "z" * 62 + "\u2026" for name in named)
