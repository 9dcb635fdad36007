"""A URL whose percent-decoded path or query is not UTF-8 names nothing: 400, never a guess."""

from urllib.parse import unquote_to_bytes

import pytest

from tests.helpers.api import assert_problem

NOT_UTF8 = ["%ff", "a%ed%a0%80", "%c0%af", "%e2%82"]  # a stray byte, a surrogate, an overlong "/", a cut-off character
ids = ["stray-byte", "surrogate", "overlong", "truncated"]


def get(client, path: str, **kwargs):
    """GET `path` (percent-encoded) as gunicorn hands it to the app: PATH_INFO holds the decoded bytes,
    as latin-1. werkzeug's test client would decode them itself, with U+FFFD for what is not UTF-8."""
    return client.get(path, environ_overrides={"PATH_INFO": unquote_to_bytes(path).decode("latin-1")}, **kwargs)


@pytest.fixture
def booked(client, new_event):
    """An event with a booking of the user named U+FFFD, whom a lenient decoding of %ff would find."""
    event = new_event(5)
    assert client.post("/api/book", json={"eventId": event["id"], "userId": "\ufffd"}).status_code == 201
    return event["id"]


@pytest.mark.parametrize("segment", NOT_UTF8, ids=ids)
def test_a_user_id_that_is_not_utf8_is_a_400_not_another_user(client, booked, segment):
    assert_problem(get(client, f"/api/booking-status/{booked}/{segment}"), 400, "invalid_request")


@pytest.mark.parametrize("segment", NOT_UTF8, ids=ids)
@pytest.mark.parametrize(
    "template",
    ["/api/status/{}", "/api/booking-status/{}/u", "/api/events/{}/history", "/{}"],
    ids=["status", "booking-status", "history", "unknown-path"],
)
def test_every_path_parameter_that_is_not_utf8_is_a_400(client, admin_headers, template, segment):
    body = assert_problem(get(client, template.format(segment), headers=admin_headers), 400, "invalid_request")
    assert "UTF-8" in body["detail"]


@pytest.mark.parametrize("query", ["after=%ff", "limit=1&x=%ff", "%ff=1"])
def test_a_query_that_is_not_utf8_is_a_400(client, admin_headers, booked, query):
    response = client.get(f"/api/events/{booked}/history?{query}", headers=admin_headers)
    assert "UTF-8" in assert_problem(response, 400, "invalid_request")["detail"]


def test_a_percent_encoded_utf8_user_id_is_read_as_that_user(client, booked):
    response = get(client, f"/api/booking-status/{booked}/%EF%BF%BD")  # U+FFFD itself, in UTF-8
    assert response.get_json()["booking"]["userId"] == "\ufffd"


@pytest.mark.parametrize(
    "template", ["/api/booking-status/{}/{}", "/api/users/{}/bookings"], ids=["booking-status", "user-bookings"]
)
@pytest.mark.parametrize("user_id", ["a%0Ab", "a%0A", "a/%0A/b"], ids=["inner", "trailing", "after-slash"])
def test_a_user_id_with_a_line_feed_reaches_its_route_and_is_a_400(client, booked, template, user_id):
    # werkzeug's `path` converter, `[^/].*?`, matched no line feed after the first character: the
    # route went unmatched and the answer was 404 not_found, which the document does not list.
    path = template.format(booked, user_id) if "booking-status" in template else template.format(user_id)
    body = assert_problem(get(client, path), 400, "invalid_request")
    assert "userId" in body["errors"] or "user_id" in body["errors"], body
