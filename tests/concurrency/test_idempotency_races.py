"""One Idempotency-Key, many identical requests at once: one effect, one response, the rest replays.

Each thread drives the app through a test client of its own, so the requests meet where real ones
would: on the key's row in PostgreSQL.
"""

from __future__ import annotations

from collections import Counter

from app.database.tables import bookings
from tests.helpers.database import count_rows, ledger_kinds
from tests.helpers.races import race

SAME_KEY_REQUESTS = 20


def same_key_race(app, path: str, body: dict, key: str):
    def send():
        return app.test_client().post(path, json=body, headers={"Idempotency-Key": key})

    return race([send] * SAME_KEY_REQUESTS)


def test_twenty_bookings_with_one_key_at_once_book_once_and_all_get_the_same_response(app, engine, new_event):
    event = new_event(5)

    responses = same_key_race(app, "/api/book", {"eventId": event["id"], "userId": "eager"}, "race-book")

    assert {(r.status_code, r.get_data()) for r in responses} == {(201, responses[0].get_data())}
    assert Counter(r.headers.get("Idempotent-Replayed") for r in responses) == {"true": 19, None: 1}
    assert count_rows(engine, bookings, event_id=event["id"]) == 1
    assert Counter(ledger_kinds(engine, event["id"])) == {"booked": 1}


def test_twenty_cancellations_with_one_key_at_once_cancel_and_promote_once(app, client, engine, new_event):
    event = new_event(1)
    for user in ("leaving", "w1", "w2"):
        client.post("/api/book", json={"eventId": event["id"], "userId": user})

    responses = same_key_race(app, "/api/cancel", {"eventId": event["id"], "userId": "leaving"}, "race-cancel")

    assert {(r.status_code, r.get_data()) for r in responses} == {(200, responses[0].get_data())}
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 19
    assert responses[0].get_json()["promoted"]["userId"] == "w1"
    assert Counter(ledger_kinds(engine, event["id"])) == {"booked": 1, "waitlisted": 2, "cancelled": 1, "promoted": 1}
