"""The ledger: each state change appends one row to booking_events, in the transaction that makes it."""

import json
import re

import pytest
from sqlalchemy import select

from app.database.tables import booking_events

# The request id that migration 0002's backfill reserved for the synthetic history it wrote.
BACKFILL_MARKER = "migration-0002-backfill"
SERVER_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as app/web/request_context.py chooses it


def ledger(engine, event_id) -> list[tuple]:
    """(kind, userId, requestId) of the event's ledger rows, in order."""
    statement = (
        select(booking_events.c.kind, booking_events.c.user_id, booking_events.c.request_id)
        .where(booking_events.c.event_id == event_id)
        .order_by(booking_events.c.seq)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(statement)]


def post(client, path, event, user_id, headers=None) -> str:
    """POST `path` for the user; the X-Request-ID of the response."""
    response = client.post(path, json={"eventId": event["id"], "userId": user_id}, headers=headers or {})
    return response.headers["X-Request-ID"]


def test_booking_appends_booked_then_waitlisted_with_the_request_id(client, engine, new_event):
    event = new_event(1)
    first = post(client, "/api/book", event, "holder")
    second = post(client, "/api/book", event, "waiter")

    assert ledger(engine, event["id"]) == [("booked", "holder", first), ("waitlisted", "waiter", second)]


def test_cancelling_a_ticket_appends_the_cancellation_then_the_promotion_under_one_request_id(
    client, engine, new_event
):
    event = new_event(1)
    post(client, "/api/book", event, "holder")
    post(client, "/api/book", event, "waiter")
    cancel = post(client, "/api/cancel", event, "holder")

    assert ledger(engine, event["id"])[2:] == [("cancelled", "holder", cancel), ("promoted", "waiter", cancel)]


def test_cancelling_a_waiting_entry_appends_only_the_cancellation(client, engine, new_event):
    event = new_event(1)
    post(client, "/api/book", event, "holder")
    post(client, "/api/book", event, "waiter")
    cancel = post(client, "/api/cancel", event, "waiter")

    assert ledger(engine, event["id"])[2:] == [("cancelled", "waiter", cancel)]


def test_refused_requests_append_nothing(client, engine, new_event):
    event = new_event(1)
    booked = post(client, "/api/book", event, "holder")
    post(client, "/api/book", event, "holder")
    post(client, "/api/cancel", event, "stranger")
    cancelled = post(client, "/api/cancel", event, "holder")
    post(client, "/api/cancel", event, "holder")

    assert [request_id for *_, request_id in ledger(engine, event["id"])] == [booked, cancelled]


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_the_ledger_records_the_servers_request_id_never_the_clients(client, engine, new_event, keyed):
    event = new_event(1)

    def headers(step: str) -> dict:
        key = {"Idempotency-Key": f"{step}-{event['id']}"} if keyed else {}
        return {"X-Request-ID": BACKFILL_MARKER, **key}

    echoed = post(client, "/api/book", event, "holder", headers("book"))
    post(client, "/api/book", event, "waiter", headers("wait"))
    post(client, "/api/cancel", event, "holder", headers("cancel"))

    recorded = [request_id for *_, request_id in ledger(engine, event["id"])]
    assert echoed == BACKFILL_MARKER  # the client's id is still echoed, as the contract says
    assert len(recorded) == 4 and all(SERVER_ID.fullmatch(request_id) for request_id in recorded)


def test_the_request_log_lines_carry_both_the_ledgers_id_and_the_clients(client, engine, new_event, capsys):
    event = new_event(1)
    capsys.readouterr()
    post(client, "/api/book", event, "ana", {"X-Request-ID": "client-7"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]

    ((_, _, recorded),) = ledger(engine, event["id"])
    assert lines and all((line["request_id"], line["client_request_id"]) == (recorded, "client-7") for line in lines)
