"""The strict first-come-first-served rule, as a stateful property: the SQL functions against a plain model.

Hypothesis drives random books, whole and partial cancels with random quantities, straight into
book_ticket / cancel_booking on PostgreSQL (one connection, autocommit, as the service sends them),
and the same steps into `audit.Replay`, the rule in plain Python. After every step the two must agree
on each answer (status, place, tickets ahead, who was promoted, in order) and on the tables (every
booking's status and quantity, every waiting entry's place, the event's counts); and `flask check`'s
own audit of the event must find nothing.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from app.booking.domain import CANCELLED, WAITING
from app.database.tables import events
from app.operations import audit
from tests.helpers.queue import book_sql, booking_rows, cancel_sql, event_row, open_event

class FifoRule(RuleBasedStateMachine):
    """One event per run; `model` is the rule's own answer to every step."""

    def __init__(self, engine) -> None:
        super().__init__()
        self.conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def teardown(self) -> None:
        self.conn.close()

    @initialize(total=st.integers(1, 12), max_per_booking=st.integers(1, 6))
    def open(self, total: int, max_per_booking: int) -> None:
        self.event = open_event(self.conn, total, max_per_booking)
        self.limit = min(total, max_per_booking)
        self.model = audit.Replay(total)
        self.active: dict[str, uuid.UUID] = {}  # user -> active booking, by the model
        self.gone: list[str] = []  # users whose last booking is cancelled

    @rule(data=st.data())
    def book(self, data) -> None:
        """A new user books 1..limit tickets, or now and then one more than the event allows."""
        user, quantity = f"user-{len(self.active) + len(self.gone)}", data.draw(st.integers(1, self.limit + 1))
        if quantity > self.limit:
            assert book_sql(self.conn, self.event, user, quantity).outcome == "quantity_above_limit"
        else:
            self.book_as_the_model_says(user, quantity)

    @precondition(lambda self: self.gone)
    @rule(data=st.data())
    def book_again(self, data) -> None:
        """A user whose booking was cancelled books anew, at the back."""
        user = self.gone.pop(data.draw(st.integers(0, len(self.gone) - 1), label="user"))
        self.book_as_the_model_says(user, data.draw(st.integers(1, self.limit), label="quantity"))

    def book_as_the_model_says(self, user: str, quantity: int) -> None:
        row = book_sql(self.conn, self.event, user, quantity)
        self.active[user] = row.booking_id
        status = self.model.book(row.booking_id, user, quantity)
        assert (row.outcome, row.booking_status, row.booking_quantity) == ("ok", status, quantity)
        assert (row.waiting_position, row.tickets_ahead) == self.place(row.booking_id)

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def book_twice(self, data) -> None:
        user = data.draw(st.sampled_from(sorted(self.active)), label="user")
        assert book_sql(self.conn, self.event, user, 1).outcome == "already_booked"

    @precondition(lambda self: self.active)
    @rule(data=st.data(), share=st.none() | st.floats(0, 1.5))
    def cancel(self, data, share: float | None) -> None:
        """An active user cancels all (share None) or a share of their tickets, at least one; a share
        above 1 can ask for more than they hold."""
        user = data.draw(st.sampled_from(sorted(self.active)), label="user")
        held = self.model.quantity[self.active[user]]
        quantity = None if share is None else max(1, round(share * held))
        row = cancel_sql(self.conn, self.event, user, quantity)
        if quantity is not None and quantity > held:
            assert row.outcome == "quantity_above_held"
        else:
            self.assert_cancelled_as_the_model_says(row, self.active[user], quantity)

    def assert_cancelled_as_the_model_says(self, row, booking: uuid.UUID, quantity: int | None) -> None:
        promoted = self.model.cancel(booking, quantity)
        if self.model.status[booking] == CANCELLED:
            del self.active[self.model.user[booking]]
            self.gone.append(self.model.user[booking])
        assert (row.outcome, row.booking_id, row.promoted_ids) == ("ok", booking, promoted)
        assert (row.booking_status, row.booking_quantity) == (self.model.status[booking], self.model.quantity[booking])
        assert (row.waiting_position, row.tickets_ahead) == self.place(booking)
        assert row.promoted_quantities == [self.model.quantity[b] for b in promoted]

    def place(self, booking: uuid.UUID) -> tuple[int | None, int | None]:
        if self.model.status[booking] != WAITING:
            return None, None
        return self.model.position(booking), self.model.tickets_ahead(booking)

    @invariant()
    def tables_hold_what_the_model_holds(self) -> None:
        ev = event_row(self.conn, self.event)
        assert (ev.available_tickets, ev.waiting_count, ev.waiting_tickets) == (
            self.model.available, len(self.model.queue), self.model.waiting_tickets
        )
        rows = booking_rows(self.conn, self.event)
        assert {row.id: (row.status, row.quantity) for row in rows} == {
            booking: (status, self.model.quantity[booking]) for booking, status in self.model.status.items()
        }
        assert {row.id: (row.waiting_position, row.tickets_ahead) for row in rows} == {
            row.id: self.place(row.id) for row in rows
        }

    @invariant()
    def flask_check_finds_nothing(self) -> None:
        report = audit.Report()
        audit.check_event(self.conn, self.conn.execute(select(events).where(events.c.id == self.event)).one(), report)
        assert report.problems == []


def test_the_database_functions_follow_the_strict_fifo_rule_step_by_step(engine):
    run_state_machine_as_test(
        lambda: FifoRule(engine),
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
