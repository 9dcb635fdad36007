"""Idempotency-Key on every write (POST /api/initialize, /api/book, /api/cancel, and the webhook admin's), as
the contract's "Safe retries" says."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from app.database.tables import booking_events, bookings, idempotency_keys, webhook_messages, webhooks
from tests.helpers.api import NIL_UUID, assert_problem
from tests.helpers.database import count_rows, ledger_kinds
from tests.helpers.metrics import sample, scrape


def post(client, path, body, key=None, headers=None):
    """POST `body`, given as a dict or as the exact JSON text to send."""
    data = body if isinstance(body, str) else json.dumps(body)
    headers = {**(headers or {}), **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(path, data=data, content_type="application/json", headers=headers)


def key_stored(engine, key: str) -> bool:
    return count_rows(engine, idempotency_keys, key=key) == 1


def assert_replay_of(first, repeat):
    assert (repeat.status_code, repeat.get_data()) == (first.status_code, first.get_data())
    assert repeat.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert repeat.headers["Content-Type"] == first.headers["Content-Type"]


def test_a_repeated_booking_returns_the_first_response_byte_for_byte_and_books_nothing_more(client, engine, new_event):
    event = new_event(2)
    first = post(client, "/api/book", {"eventId": event["id"], "userId": "u"}, key="book-once")
    # The same body in another key order and spacing: the same request.
    repeat = post(client, "/api/book", f'{{ "userId": "u",  "eventId": "{event["id"]}" }}', key="book-once")

    assert first.status_code == 201
    assert_replay_of(first, repeat)
    assert count_rows(engine, bookings, event_id=event["id"]) == 1
    assert count_rows(engine, booking_events, event_id=event["id"]) == 1


def test_a_repeated_cancellation_cancels_and_promotes_once(client, engine, new_event):
    event = new_event(1)
    for user in ("holder", "w1", "w2"):
        post(client, "/api/book", {"eventId": event["id"], "userId": user})
    body = {"eventId": event["id"], "userId": "holder"}
    first, repeat = (post(client, "/api/cancel", body, key="cancel-once") for _ in range(2))

    assert first.get_json()["promoted"]["userId"] == "w1"
    assert_replay_of(first, repeat)
    assert ledger_kinds(engine, event["id"]) == ["booked", "waitlisted", "waitlisted", "cancelled", "promoted"]


def test_a_repeated_initialize_opens_one_event_and_replays_its_location(client, admin_headers):
    body = {"totalTickets": 3, "name": "once"}
    first, repeat = (post(client, "/api/initialize", body, "init-once", admin_headers) for _ in range(2))

    assert first.status_code == 201 and first.headers["Location"].endswith(first.get_json()["event"]["id"])
    assert_replay_of(first, repeat)
    assert repeat.headers["Location"] == first.headers["Location"]


def test_a_refusal_is_stored_and_replayed_even_after_the_situation_changed(client, new_event):
    event = new_event(1)
    body = {"eventId": event["id"], "userId": "u"}
    post(client, "/api/book", body)
    refused = post(client, "/api/book", body, key="refused-once")
    post(client, "/api/cancel", body)  # booking again would now succeed, but this key has its answer

    assert_problem(refused, 409, "already_booked")
    assert_replay_of(refused, post(client, "/api/book", body, key="refused-once"))


def test_an_unknown_event_is_stored_and_replayed(client):
    body = {"eventId": "no-such-event", "userId": "u"}
    first = post(client, "/api/cancel", body, key="unknown-event")

    assert_problem(first, 404, "event_not_found")
    assert_replay_of(first, post(client, "/api/cancel", body, key="unknown-event"))


def test_an_event_id_with_a_lone_surrogate_is_404_with_a_key_as_without(client):
    body = '{"eventId": "\\ud800", "userId": "u"}'  # valid JSON, not encodable as UTF-8
    for key in (None, "surrogate-event-id"):
        assert_problem(post(client, "/api/book", body, key=key), 404, "event_not_found")


def test_the_same_key_with_another_body_is_422_and_changes_nothing(client, engine, new_event):
    event = new_event(2)
    post(client, "/api/book", {"eventId": event["id"], "userId": "a"}, key="one-body")

    response = post(client, "/api/book", {"eventId": event["id"], "userId": "b"}, key="one-body")

    assert_problem(response, 422, "idempotency_key_reused")
    assert count_rows(engine, bookings, event_id=event["id"], user_id="b") == 0


def test_the_same_key_on_another_endpoint_is_422(client, new_event):
    event = new_event(2)
    body = {"eventId": event["id"], "userId": "a"}
    post(client, "/api/book", body, key="one-endpoint")

    assert_problem(post(client, "/api/cancel", body, key="one-endpoint"), 422, "idempotency_key_reused")
    assert client.get(f"/api/booking-status/{event['id']}/a").get_json()["booking"]["status"] == "confirmed"


def test_a_request_refused_by_validation_leaves_its_key_free(client, engine, new_event):
    event = new_event(1)
    assert_problem(post(client, "/api/book", {"eventId": event["id"]}, key="after-400"), 400, "invalid_request")
    assert not key_stored(engine, "after-400")

    response = post(client, "/api/book", {"eventId": event["id"], "userId": "u"}, key="after-400")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers


def test_an_unauthorised_initialize_leaves_its_key_free(client, engine, admin_headers):
    assert_problem(post(client, "/api/initialize", {"totalTickets": 1}, key="after-401"), 401, "unauthorized")
    assert not key_stored(engine, "after-401")

    assert post(client, "/api/initialize", {"totalTickets": 1}, "after-401", admin_headers).status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "del\x7f", "caf\xe9"])
def test_a_malformed_key_is_a_400_naming_the_header(client, key):
    response = post(client, "/api/book", {"eventId": NIL_UUID, "userId": "u"}, key=key)
    assert list(assert_problem(response, 400, "invalid_request")["errors"]) == ["Idempotency-Key"]


def test_a_key_of_255_printable_characters_is_accepted(client, new_event):
    key = ("~ !" * 85)[:255]
    assert post(client, "/api/book", {"eventId": new_event(1)["id"], "userId": "u"}, key=key).status_code == 201


@pytest.fixture
def impatient_app(make_app):
    """The app with a lock timeout short enough for a test to wait it out."""
    return make_app(db_lock_timeout_ms=200)


def test_a_repeat_while_the_first_is_in_flight_too_long_is_409_request_in_progress(impatient_app, engine, new_event):
    event = new_event(1)
    body = {"eventId": event["id"], "userId": "u"}
    client = impatient_app.test_client()
    with engine.connect() as first_request, first_request.begin() as in_flight:
        # What a first request with the key holds until it commits: the key's freshly inserted row.
        first_request.execute(text("INSERT INTO idempotency_keys (key, fingerprint) VALUES ('in-flight', 'x')"))
        response = post(client, "/api/book", body, key="in-flight")
        in_flight.rollback()  # the first request fails: the key is free again

    assert_problem(response, 409, "request_in_progress")
    assert response.headers["Retry-After"] == "1"
    assert post(client, "/api/book", body, key="in-flight").status_code == 201


def test_a_request_that_fails_with_a_5xx_leaves_its_key_free(impatient_app, engine, new_event):
    event = new_event(1)
    body = {"eventId": event["id"], "userId": "u"}
    client = impatient_app.test_client()
    with engine.connect() as other, other.begin() as busy:
        other.execute(text("SELECT 1 FROM events WHERE id = :id FOR UPDATE"), {"id": event["id"]})
        failed = post(client, "/api/book", body, key="after-503")  # its lock wait times out
        busy.rollback()

    assert_problem(failed, 503, "unavailable")
    assert not key_stored(engine, "after-503")
    retried = post(client, "/api/book", body, key="after-503")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers


def test_purge_deletes_only_the_keys_older_than_the_retention(app, client, engine, new_event):
    event = new_event(5)
    for user in ("old-1", "old-2", "old-3", "recent"):
        post(client, "/api/book", {"eventId": event["id"], "userId": user}, key=f"purge-{user}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second' WHERE key LIKE 'purge-old-%'"
            )
        )

    result = app.test_cli_runner().invoke(args=["purge-idempotency-keys", "--batch-size", "2"])

    assert result.exit_code == 0 and result.output == "purged 3 idempotency keys older than 86400 s\n"
    assert [key_stored(engine, f"purge-{user}") for user in ("old-1", "old-2", "old-3", "recent")] == [
        False,
        False,
        False,
        True,
    ]


def test_a_keyed_booking_is_counted_once_however_often_it_is_replayed(client, new_event):
    event = new_event(2)
    body = {"eventId": event["id"], "userId": "counted"}
    before = sample(scrape(client), "bookings_total", outcome="confirmed")
    for _ in range(3):
        post(client, "/api/book", body, key="counted-once")

    assert sample(scrape(client), "bookings_total", outcome="confirmed") - before == 1


def test_two_idempotency_key_headers_are_a_400_and_change_nothing(client, engine, new_event):
    event = new_event(1)
    two_keys = [("Idempotency-Key", "first"), ("Idempotency-Key", "second")]
    response = client.post("/api/book", json={"eventId": event["id"], "userId": "u"}, headers=two_keys)

    assert list(assert_problem(response, 400, "invalid_request")["errors"]) == ["Idempotency-Key"]
    assert count_rows(engine, bookings, event_id=event["id"]) == 0
    assert count_rows(engine, idempotency_keys, key="first, second") == 0


def test_a_key_with_a_comma_as_gunicorn_joins_two_headers_is_a_400(client, engine, new_event):
    event = new_event(1)
    response = post(client, "/api/book", {"eventId": event["id"], "userId": "u"}, key="first,second")

    assert list(assert_problem(response, 400, "invalid_request")["errors"]) == ["Idempotency-Key"]
    assert not key_stored(engine, "first,second")
    assert count_rows(engine, bookings, event_id=event["id"]) == 0


def test_a_repeated_webhook_registration_registers_one_and_shows_the_same_secret(
    client, engine, admin_headers, receiver, webhooks_removed_afterwards
):
    body = {"url": receiver.url, "types": ["booking.confirmed"]}
    first, repeat = (post(client, "/api/webhooks", body, "register-once", admin_headers) for _ in range(2))

    assert first.status_code == 201
    assert_replay_of(first, repeat)
    assert count_rows(engine, webhooks, url=receiver.url) == 1


def test_a_registration_stored_with_its_key_does_not_reveal_the_secret(
    client, engine, admin_headers, receiver, webhooks_removed_afterwards
):
    secret = post(client, "/api/webhooks", {"url": receiver.url}, "register-sealed", admin_headers).get_json()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT body FROM idempotency_keys WHERE key = 'register-sealed'")).scalar_one()

    assert secret["webhook"]["secret"].encode() not in bytes(stored)


def test_the_same_key_with_another_webhook_url_is_422_and_registers_nothing(
    client, engine, admin_headers, receiver, webhooks_removed_afterwards
):
    post(client, "/api/webhooks", {"url": receiver.url}, "register-one-body", admin_headers)

    other = post(client, "/api/webhooks", {"url": receiver.url + "/other"}, "register-one-body", admin_headers)

    assert_problem(other, 422, "idempotency_key_reused")
    assert count_rows(engine, webhooks, url=receiver.url + "/other") == 0


def test_a_repeated_webhook_removal_replays_its_204(client, admin_headers, register, receiver):
    path = f"/api/webhooks/{register(receiver)['id']}"
    first, repeat = (client.delete(path, headers={**admin_headers, "Idempotency-Key": "remove-once"}) for _ in range(2))

    assert first.status_code == 204
    assert_replay_of(first, repeat)
    assert client.delete(path, headers=admin_headers).status_code == 404  # without the key: gone


def test_a_repeated_delivery_retry_sends_it_again_once(client, engine, admin_headers, register, receiver, new_event):
    event = new_event(1)
    webhook = register(receiver, eventId=event["id"])
    post(client, "/api/book", {"eventId": event["id"], "userId": "u"})
    delivery = client.get(f"/api/webhooks/{webhook['id']}/deliveries", headers=admin_headers).get_json()
    path = f"/api/webhooks/{webhook['id']}/deliveries/{delivery['deliveries'][0]['messageId']}/retry"
    first = post(client, path, {}, "retry-once", admin_headers)
    with engine.begin() as conn:  # as a dispatcher leaves it once that try failed for good
        failed = webhook_messages.update().where(webhook_messages.c.webhook_id == webhook["id"])
        conn.execute(failed.values(state="failed"))

    assert first.status_code == 202
    assert_replay_of(first, post(client, path, {}, "retry-once", admin_headers))
    assert count_rows(engine, webhook_messages, webhook_id=webhook["id"], state="failed") == 1
