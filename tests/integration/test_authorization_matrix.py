"""AUTH_MODE=jwt: who may act for whom, on every route, for every kind of caller (the contract's matrix)."""

from __future__ import annotations

import pytest

from tests.helpers.api import ADMIN_TOKEN
from tests.helpers.booking import book, open_event
from tests.helpers.identity import bearer
from tests.helpers.webhooks import NOWHERE, add_webhook

CALLERS = ["no token", "own user", "other user", "bookings:any", "events:admin", "static admin token"]
# The route, as (method, path, body) for an event where alice holds a booking; then the status each caller gets.
MATRIX = {
    "initialize": (("POST", "/api/initialize", {"totalTickets": 3}), [401, 403, 403, 403, 201, 201]),
    "history": (("GET", "/api/events/{event}/history", None), [401, 403, 403, 403, 200, 200]),
    "book": (("POST", "/api/book", {"eventId": "{event}", "userId": "alice"}), [401, 409, 403, 409, 403, 403]),
    "cancel": (("POST", "/api/cancel", {"eventId": "{event}", "userId": "alice"}), [401, 200, 403, 200, 403, 403]),
    # alice's booking is confirmed, not offered: past the authorization, she holds no offer (409 no_offer).
    "accept": (("POST", "/api/accept", {"eventId": "{event}", "userId": "alice"}), [401, 409, 403, 409, 403, 403]),
    "decline": (("POST", "/api/decline", {"eventId": "{event}", "userId": "alice"}), [401, 409, 403, 409, 403, 403]),
    # Confirming a hold is the payment backend's (bookings:confirm) or an admin's, never the user's own: past
    # the authorization, alice's booking is confirmed, not held (409 no_hold).
    "confirm": (("POST", "/api/confirm", {"eventId": "{event}", "userId": "alice"}), [401, 403, 403, 403, 409, 409]),
    "booking-status": (("GET", "/api/booking-status/{event}/alice", None), [401, 200, 403, 200, 403, 403]),
    "user bookings": (("GET", "/api/users/alice/bookings", None), [401, 200, 403, 200, 403, 403]),
    "event status": (("GET", "/api/status/{event}", None), [200, 200, 200, 200, 200, 200]),
    "register webhook": (
        ("POST", "/api/webhooks", {"url": NOWHERE, "eventId": "{event}"}),
        [401, 403, 403, 403, 201, 201],
    ),
    "webhooks": (("GET", "/api/webhooks", None), [401, 403, 403, 403, 200, 200]),
    "webhook": (("GET", "/api/webhooks/{webhook}", None), [401, 403, 403, 403, 200, 200]),
    "delete webhook": (("DELETE", "/api/webhooks/{webhook}", None), [401, 403, 403, 403, 204, 204]),
    "deliveries": (("GET", "/api/webhooks/{webhook}/deliveries", None), [401, 403, 403, 403, 200, 200]),
    # No such message: past the authorization, an admin learns that.
    "retry delivery": (
        ("POST", f"/api/webhooks/{{webhook}}/deliveries/msg_{'0' * 32}/retry", {}),
        [401, 403, 403, 403, 404, 404],
    ),
    "events": (("GET", "/api/events", None), [401, 403, 403, 403, 200, 200]),
    "change event": (("PATCH", "/api/events/{event}", {"name": "Renamed"}), [401, 403, 403, 403, 200, 200]),
    "call event off": (("POST", "/api/events/{event}/cancel", None), [401, 403, 403, 403, 200, 200]),
    "waiting list": (("GET", "/api/events/{event}/waiting-list", None), [401, 403, 403, 403, 200, 200]),
    "event bookings": (("GET", "/api/events/{event}/bookings", None), [401, 403, 403, 403, 200, 200]),
}
CASES = [
    pytest.param(route, caller, expected, id=f"{route}-{caller}")
    for route, (_, statuses) in MATRIX.items()
    for caller, expected in zip(CALLERS, statuses, strict=True)
]


@pytest.fixture
def headers_of(signing_key):
    tokens = {
        "own user": signing_key.token("alice"),
        "other user": signing_key.token("bob"),
        "bookings:any": signing_key.token("partner-backend", "bookings:any"),
        "events:admin": signing_key.token("operator", "events:admin"),
        "static admin token": ADMIN_TOKEN,
    }
    return lambda caller: bearer(tokens[caller]) if caller in tokens else {}


def fill(value, event_id: str, webhook_id: str):
    if isinstance(value, str):
        return value.replace("{event}", event_id).replace("{webhook}", webhook_id)
    if isinstance(value, dict):
        return {name: fill(item, event_id, webhook_id) for name, item in value.items()}
    return value


@pytest.mark.parametrize(("route", "caller", "expected"), CASES)
def test_each_route_answers_each_caller_as_the_contract_says(
    jwt_client, engine, config, headers_of, route, caller, expected
):
    event_id = str(open_event(engine, 2).id)
    book(engine, event_id, "alice")
    webhook_id = add_webhook(engine, config, event_id)  # after the booking: it has no message to send
    (method, path, body), _ = MATRIX[route]
    response = jwt_client.open(
        fill(path, event_id, webhook_id),
        method=method,
        json=fill(body, event_id, webhook_id),
        headers=headers_of(caller),
    )
    assert response.status_code == expected, response.get_json()
    code = {401: "unauthorized", 403: "forbidden"}.get(expected)
    if code:
        assert response.get_json()["code"] == code
