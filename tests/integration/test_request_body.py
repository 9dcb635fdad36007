"""The request body: MAX_BODY_BYTES holds however the body is framed, and only strict JSON is read."""

import io

import pytest
from flask import request
from werkzeug.exceptions import BadRequest

from tests.helpers.api import assert_problem, padded

LIMIT = 65536  # the default MAX_BODY_BYTES of the `config` fixture


def post_chunked(client, path: str, raw: bytes, headers: dict | None = None):
    """POST `raw` without Content-Length, as gunicorn hands a `Transfer-Encoding: chunked` body to the app:
    decoded, and marked as ended by the server (`wsgi.input_terminated`)."""
    return client.post(
        path,
        input_stream=io.BytesIO(raw),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked", **(headers or {})},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_chunked_body_over_the_limit_is_a_413_and_books_nothing(client, new_event):
    event = new_event(5)
    # Its first LIMIT bytes are a valid booking: cut there, it used to be booked.
    raw = padded({"eventId": event["id"], "userId": "cut"}, LIMIT) + b'{"more": "bytes"}'
    assert_problem(post_chunked(client, "/api/book", raw), 413, "payload_too_large")
    assert client.get(f"/api/status/{event['id']}").get_json()["event"]["availableTickets"] == 5


def test_chunked_body_over_the_limit_leaves_its_idempotency_key_free(client, new_event):
    event = new_event(5)
    booking = {"eventId": event["id"], "userId": "keyed"}
    key = {"Idempotency-Key": "chunked-over-the-limit"}
    assert_problem(post_chunked(client, "/api/book", padded(booking, LIMIT + 1), key), 413, "payload_too_large")
    assert client.post("/api/book", json=booking, headers=key).headers.get("Idempotent-Replayed") is None


def test_chunked_body_of_exactly_the_limit_is_accepted(client, new_event):
    event = new_event(5)
    response = post_chunked(client, "/api/book", padded({"eventId": event["id"], "userId": "whole"}, LIMIT))
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 30_000 + "]" * 30_000,  # RecursionError in json
        '{"eventId": {"a": ' * 2000 + "1" + "}" * 2001,
        '{"eventId": "e", "userId": ' + "1" * 4301 + "}",  # ValueError: more than 4300 digits
        '{"eventId": "e", "userId": NaN}',  # not JSON
        '{"eventId": "e", "userId": -Infinity}',
        '{"eventId": "e", "userId": 1e999}',  # no float holds it
        '{"eventId": "e", "userId": "a", "userId": "b"}',  # which one? a proxy in front may read the other
    ],
    ids=["deep-array", "deep-object", "long-integer", "nan", "infinity", "huge-float", "duplicate-key"],
)
def test_hostile_json_is_a_400_and_logs_no_traceback(client, capsys, raw):
    body = assert_problem(client.post("/api/book", data=raw, content_type="application/json"), 400, "invalid_request")
    assert body["errors"] == {"body": ["Invalid JSON body."]}
    assert "unhandled_exception" not in capsys.readouterr().out


def test_duplicate_key_books_nobody(client, new_event):
    event = new_event(5)
    raw = f'{{"eventId": "{event["id"]}", "userId": "first", "userId": "second"}}'
    client.post("/api/book", data=raw, content_type="application/json")
    assert client.get(f"/api/status/{event['id']}").get_json()["event"]["availableTickets"] == 5


def test_an_integer_of_4300_digits_is_still_read_and_refused_by_range(client, admin_headers):
    raw = '{"totalTickets": ' + "9" * 4300 + "}"
    body = assert_problem(
        client.post("/api/initialize", data=raw, content_type="application/json", headers=admin_headers),
        400,
        "invalid_request",
    )
    assert list(body["errors"]) == ["totalTickets"]


def test_flask_reads_json_as_strictly_as_the_parser(app):
    # request.get_json (the Idempotency-Key fingerprint reads the body with it) must not accept more.
    with app.test_request_context("/api/book", method="POST", data='{"a": 1, "a": 2}', content_type="application/json"):
        with pytest.raises(BadRequest):
            request.get_json()


NOT_JSON_BODIES = [b"xx", b"{", b'{"a": NaN}', b"\xff"]


@pytest.mark.parametrize("raw", NOT_JSON_BODIES)
def test_every_post_route_refuses_a_json_body_that_is_not_json(app, client, admin_headers, raw):
    # The ids in the paths name nothing: the body is refused before anything is looked up.
    paths = [rule.rule.replace("<", "").replace(">", "") for rule in app.url_map.iter_rules() if "POST" in rule.methods]
    for path in paths:
        response = client.post(path, data=raw, content_type="application/json", headers=admin_headers)
        assert_problem(response, 400, "invalid_request")


@pytest.mark.parametrize("raw", [b"xx", b"[]", b'{"reason": "sold out"}', b"null"])
def test_calling_off_an_event_with_a_body_other_than_an_empty_object_is_a_400_that_changes_nothing(
    client, admin_headers, new_event, raw
):
    event = new_event(5)
    response = client.post(
        f"/api/events/{event['id']}/cancel", data=raw, content_type="application/json", headers=admin_headers
    )
    assert_problem(response, 400, "invalid_request")
    assert client.get(f"/api/status/{event['id']}").get_json()["event"]["status"] == "active"


@pytest.mark.parametrize("body", [{"data": b"{}", "content_type": "application/json"}, {}], ids=["{}", "no body"])
def test_calling_off_an_event_with_an_empty_object_or_no_body_is_done(client, admin_headers, new_event, body):
    event = new_event(5)
    response = client.post(f"/api/events/{event['id']}/cancel", headers=admin_headers, **body)
    assert response.status_code == 200 and response.get_json()["event"]["status"] == "cancelled"
