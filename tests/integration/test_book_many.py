"""Bookings without a key travel together: `book_many` in SQL, and the service's batches on PostgreSQL.

To know which booking travels with which, a test holds the event's row lock from another session:
the first booking then waits for it in PostgreSQL, and the next ones queue behind it in the process.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import literal_column, select, text

from app.booking.services import BOOK_MANY
from app.database.engine import Database
from app.database.tables import booking_events, bookings
from tests.helpers.api import assert_problem
from tests.helpers.database import waiting_sessions
from tests.helpers.waiting import wait_until


def book_many(engine, event_id: str, user_ids: list[str]) -> list:
    request_ids = [f"r-{user}" for user in user_ids]
    with engine.begin() as conn:
        # No quantities: as v1 called it, one ticket each.
        parameters = {"event_id": event_id, "user_ids": user_ids, "request_ids": request_ids, "quantities": None}
        parameters |= {"item_counts": None, "item_types": None, "item_quantities": None}  # no items
        return conn.exec_driver_sql(BOOK_MANY, parameters).all()


def test_book_many_books_in_the_order_given_with_the_rules_of_book_ticket(engine, new_event):
    event_id = new_event(2)["id"]

    rows = book_many(engine, event_id, ["a", "b", "a", "c", "d"])

    assert [(row.outcome, row.booking_status, row.waiting_position) for row in rows] == [
        ("ok", "confirmed", None),
        ("ok", "confirmed", None),
        ("already_booked", None, None),
        ("ok", "waiting", 1),
        ("ok", "waiting", 2),
    ]


def test_book_many_records_each_booking_with_its_request_id_in_the_ledger(engine, new_event):
    event_id = new_event(1)["id"]

    book_many(engine, event_id, ["a", "b"])

    statement = (
        select(booking_events.c.user_id, booking_events.c.kind, booking_events.c.request_id)
        .where(booking_events.c.event_id == event_id)
        .order_by(booking_events.c.seq)
    )
    with engine.connect() as conn:
        assert conn.execute(statement).all() == [("a", "booked", "r-a"), ("b", "waitlisted", "r-b")]


def test_book_many_on_an_unknown_event_answers_event_not_found_for_each(engine):
    rows = book_many(engine, "00000000-0000-4000-8000-000000000000", ["a", "b"])

    assert [row.outcome for row in rows] == ["event_not_found", "event_not_found"]


def book_behind_a_held_lock(
    app, engine, event_id: str, users: list[str], answered_while_held=False, quantities: dict | None = None
) -> list:
    """Book `users` (each `quantities[user]` tickets, if given) while another session holds the event's
    row lock; their responses, in order.

    The first booking waits for the lock in PostgreSQL; the others queue behind it, in this order.
    The lock is let go once they are queued, or with `answered_while_held` once all were answered.
    """
    queues = Database.batcher_of(app).queues
    with engine.connect() as holder, ThreadPoolExecutor(len(users)) as pool:
        with holder.begin():
            holder.execute(text("SELECT 1 FROM events WHERE id = :e FOR UPDATE"), {"e": event_id})
            responses = []
            for queued, user in enumerate(users):
                body = {"eventId": event_id, "userId": user} | ({"quantity": quantities[user]} if quantities else {})
                responses.append(pool.submit(app.test_client().post, "/api/book", json=body))
                if queued == 0:
                    wait_until(lambda: waiting_sessions(engine), "the first booking waits for the lock")
                else:
                    wait_until(lambda n=queued: len(queues.get(uuid.UUID(event_id), ())) == n, f"{queued} queued")
            if answered_while_held:
                return [response.result() for response in responses]
        return [response.result() for response in responses]


def test_bookings_queued_behind_a_locked_event_go_as_one_statement_in_arrival_order(app, engine, new_event, issued):
    event_id = new_event(2)["id"]

    responses = book_behind_a_held_lock(app, engine, event_id, ["first", "second", "third", "fourth"])

    bodies = [response.get_json()["booking"] for response in responses]
    assert [(b["userId"], b["status"], b["waitingPosition"]) for b in bodies] == [
        ("first", "confirmed", None),
        ("second", "confirmed", None),
        ("third", "waiting", 1),
        ("fourth", "waiting", 2),
    ]
    assert sum("book_many" in statement for statement in issued) == 2
    # One transaction per statement: the three that travelled together share it (xmin), each stamped in turn.
    with engine.connect() as conn:
        rows = conn.execute(
            select(bookings.c.user_id, literal_column("xmin::text"), bookings.c.created_at)
            .where(bookings.c.event_id == event_id)
            .order_by(bookings.c.seq)
        ).all()
    assert [user for user, *_ in rows] == ["first", "second", "third", "fourth"]
    transactions, stamps = [row[1] for row in rows], [row[2] for row in rows]
    assert transactions[1] == transactions[2] == transactions[3] != transactions[0]
    assert stamps == sorted(stamps)


def answer(response) -> tuple:
    """What a booking's response tells its client: status code, and the booking or the refusal."""
    body = response.get_json()
    if response.status_code != 201:
        return response.status_code, body["code"], body["detail"], body.get("errors")
    booking = body["booking"]
    return 201, booking["status"], booking["quantity"], booking["waitingPosition"], booking["ticketsAhead"]


def test_a_batch_of_mixed_quantities_gives_each_booking_the_answer_it_would_have_had_alone(
    app, client, engine, new_event, issued
):
    # 5 tickets: 1 + 3 confirmed, then 2 waits, and so do 1 (it would fit, but 2 is ahead) and 4;
    # 5 is more than maxPerBooking 4.
    quantities = {"first": 1, "second": 3, "third": 2, "fourth": 1, "fifth": 5, "sixth": 4}
    batched = book_behind_a_held_lock(
        app, engine, new_event(5, maxPerBooking=4)["id"], list(quantities), quantities=quantities
    )
    assert sum("book_many" in statement for statement in issued) == 2  # the first alone, then the rest together
    alone_event = new_event(5, maxPerBooking=4)["id"]
    alone = [
        client.post("/api/book", json={"eventId": alone_event, "userId": user, "quantity": quantity})
        for user, quantity in quantities.items()
    ]
    assert [answer(response) for response in batched] == [answer(response) for response in alone]
    assert [answer(response)[:2] for response in batched] == [
        (201, "confirmed"),
        (201, "confirmed"),
        (201, "waiting"),
        (201, "waiting"),
        (400, "invalid_request"),
        (201, "waiting"),
    ]


def test_every_booking_of_a_batch_that_fails_gets_a_503_and_none_is_made(make_app, engine, new_event):
    app = make_app(db_lock_timeout_ms=1000)
    event_id = new_event(5)["id"]

    responses = book_behind_a_held_lock(app, engine, event_id, ["first", "second", "third"], True)

    for response in responses:
        assert_problem(response, 503, "unavailable")
    with engine.connect() as conn:
        assert conn.execute(select(bookings.c.id).where(bookings.c.event_id == event_id)).all() == []


def test_each_app_has_a_group_commit_of_its_own(app, make_app):
    # gunicorn's workers each build their app: a worker's bookings batch with that worker's alone.
    other = make_app()

    assert Database.batcher_of(app) is Database.batcher_of(app)
    assert Database.batcher_of(other) is not Database.batcher_of(app)
