"""The dispatcher across a PostgreSQL restart under a booking load: every committed change still arrives."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import create_engine, text

from tests.helpers.api import ADMIN_TOKEN
from tests.helpers.waiting import wait_until

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KIND_TYPES = {"booked": "booking.confirmed", "waitlisted": "booking.waitlisted"}


def book_until_stopped(client, event_id: str, statuses: Counter, stop: threading.Event) -> None:
    """Book one new user after another, each retried with its Idempotency-Key while the answer is 503."""
    n = 0
    while not stop.is_set():
        response = client.post(
            "/api/book", json={"eventId": event_id, "userId": f"u{n}"}, headers={"Idempotency-Key": f"u{n}"}
        )
        statuses[response.status_code] += 1
        if response.status_code != 503:
            n += 1
        else:
            stop.wait(0.05)  # a client's pause before it retries


def ledger_changes(database_url: str, event_id: str) -> set[tuple[str, str]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT booking_id, kind FROM booking_events WHERE event_id = :e"), {"e": event_id}
            ).all()
    finally:
        engine.dispose()
    return {(str(booking), KIND_TYPES[kind]) for booking, kind in rows}


def test_every_change_committed_around_a_database_restart_is_delivered(restartable_pg, make_app, receiver, dispatcher):
    client = make_app(database_url=restartable_pg.database_url).test_client()
    event_id = client.post("/api/initialize", json={"totalTickets": 20}, headers=ADMIN).get_json()["event"]["id"]
    webhook = client.post("/api/webhooks", json={"url": receiver.url, "eventId": event_id}, headers=ADMIN).get_json()
    receiver.secret = webhook["webhook"]["secret"]
    dispatcher(database_url=restartable_pg.database_url)
    statuses, stop = Counter(), threading.Event()
    load = threading.Thread(target=book_until_stopped, args=(client, event_id, statuses, stop))
    load.start()
    try:
        wait_until(lambda: len(receiver.delivered) >= 10, "deliveries flow")
        restartable_pg.server.stop("immediate")
        wait_until(lambda: statuses[503] >= 10, "the load feels the outage")
        restartable_pg.server.start()
        wait_until(lambda: statuses[201] >= 60, "the load books again", deadline_s=30)
    finally:
        stop.set()
        restartable_pg.server.start()  # in case the test failed while it was down
        load.join()
    committed = ledger_changes(restartable_pg.database_url, event_id)
    heard = lambda: {(body["data"]["booking"]["id"], body["type"]) for body in list(receiver.delivered)}  # noqa

    wait_until(lambda: committed <= heard(), "every committed change has arrived", deadline_s=40)

    assert heard() == committed and receiver.rejected == []
