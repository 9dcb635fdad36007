"""The strict first-come-first-served rule, offers included, as a stateful property: the SQL functions
against a plain model.

Hypothesis drives random books, whole and partial cancels with random quantities, switches of the
event's promotion (auto / offer, with a capacity raise now and then), accepts, declines, the passage of
time and the sweeper, straight into the database functions on PostgreSQL (one connection, autocommit,
as the service sends them; the sweeper as the dispatcher calls it), and the same steps into `OfferRule`,
the rule in plain Python. After every step the two must agree on each answer (outcome, status, place,
tickets ahead, who was promoted or offered, in order) and on the tables (every booking's status,
quantity and cancel reason, every waiting entry's place, every offer's deadline, the event's counts,
the ledger entry by entry); the API must tell the same; and `flask check`'s own audit of the event must
find nothing.

Time: the database's clock decides whether an offer is due, and a test cannot move that clock. So the
offers' TTLs are long (minutes) and time passes by moving the event's outstanding deadlines closer in
the table (tests/helpers/queue.py `time_passes`, as test_idempotency ages its keys), in steps that are
multiples of 600 s: an offer is due exactly when the model says its time is up, however long the run.
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
from sqlalchemy import select, text

from app.booking.domain import AUTO, CANCELLED, CONFIRMED, DEFAULT_OFFER_TTL_SECONDS, OFFER, OFFERED, WAITING
from app.booking.offers import sweep_expired_offers
from app.database.tables import events
from app.operations import audit
from tests.helpers.queue import (
    accept_sql,
    book_sql,
    booking_rows,
    cancel_sql,
    decline_sql,
    event_row,
    offer_seconds,
    open_event,
    promotion_sql,
    time_passes,
)

TTLS = (600, 1200)  # offers' times, in the model's seconds: never reached by the run's own duration
STEPS = (600, 1200)  # how far time jumps
LEDGER = text("SELECT kind, booking_id, quantity FROM booking_events WHERE event_id = :event ORDER BY seq")


class OfferRule(audit.Replay):
    """`audit.Replay`'s rule with offers (issue 16). In offer mode the FIFO rule offers instead of
    confirming; an offer holds its tickets until its time is up (`left`, the seconds of its TTL not yet
    passed), then accept and decline are `offer_expired`, a cancel of it is an expiry, and the sweeper
    expires it; whichever ends an offer passes its tickets on by the rule. `log` is every change made,
    as the ledger must hold it."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.promotion, self.ttl = AUTO, DEFAULT_OFFER_TTL_SECONDS  # as an event opens
        self.left: dict[uuid.UUID, int] = {}  # offered booking -> seconds before its deadline
        self.reason: dict[uuid.UUID, str] = {}  # an offer's booking -> why it was cancelled
        self.log: list[tuple] = []

    def apply(self, entry) -> list[str]:
        self.log.append((entry.kind, entry.booking_id, entry.quantity))
        return super().apply(entry)

    def _promote(self) -> list[uuid.UUID]:
        """Replay's strict FIFO walk, offering in offer mode (as promote_waiting does when given a deadline)."""
        kind, promoted = ("offered" if self.promotion == OFFER else "promoted"), []
        while self.head_fits():
            head = self.queue[0]
            promoted.append(head)
            self.apply(audit.Change(kind, head, self.user[head], self.quantity[head]))
            if kind == "offered":
                self.left[head] = self.ttl
        return promoted

    def update(self, promotion: str, ttl: int, total: int) -> list[uuid.UUID]:
        """An organiser's PATCH: one `event_updated` entry if it changes anything (update_event.sql), then
        a new capacity, whose raise promotes under the new settings; the bookings it promotes."""
        if (promotion, ttl, total) != (self.promotion, self.ttl, self.total):
            self.apply(audit.Change("event_updated", None, None, None))
        self.promotion, self.ttl = promotion, ttl
        return self.resize(total) if total != self.total else []

    def due(self, booking: uuid.UUID) -> bool:
        return self.status[booking] == OFFERED and self.left[booking] <= 0

    def refusal(self, booking: uuid.UUID) -> str | None:
        """Why an accept or a decline of the booking's offer is refused, if it is."""
        if self.status[booking] != OFFERED:
            return "no_offer"
        return "offer_expired" if self.due(booking) else None

    def cancel(self, booking: uuid.UUID, quantity: int | None = None) -> list[uuid.UUID]:
        """A whole cancel of an offer gives it up: declined, or expired if its time is up."""
        if self.status[booking] == OFFERED and quantity in (None, self.quantity[booking]):
            return self.give_up(booking, "expired" if self.due(booking) else "declined")
        return super().cancel(booking, quantity)

    def give_up(self, booking: uuid.UUID, reason: str) -> list[uuid.UUID]:
        self.apply(audit.Change(reason, booking, self.user[booking], self.quantity[booking]))
        self.reason[booking] = reason
        return self._promote()

    def accept(self, booking: uuid.UUID) -> None:
        self.apply(audit.Change("accepted", booking, self.user[booking], self.quantity[booking]))

    def time_passes(self, seconds: int) -> None:
        for booking in self.offers():
            self.left[booking] -= seconds

    def sweep(self) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """What expire_offers does: every due offer expired, oldest first, then one FIFO walk."""
        expired = [booking for booking in self.status if self.due(booking)]
        for booking in expired:
            self.apply(audit.Change("expired", booking, self.user[booking], self.quantity[booking]))
            self.reason[booking] = "expired"
        return expired, self._promote() if expired else []

    def offers(self) -> list[uuid.UUID]:
        return [booking for booking, status in self.status.items() if status == OFFERED]


class FifoRule(RuleBasedStateMachine):
    """One event per run; `model` is the rule's own answer to every step."""

    def __init__(self, engine, client, admin_headers) -> None:
        super().__init__()
        self.engine, self.client, self.admin = engine, client, admin_headers
        self.conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def teardown(self) -> None:
        self.conn.close()

    @initialize(
        total=st.integers(1, 8),
        max_per_booking=st.integers(1, 4),
        promotion=st.sampled_from([OFFER, AUTO]),
        data=st.data(),
    )
    def open(self, total: int, max_per_booking: int, promotion: str, data) -> None:
        """An event, in either mode, and its first bookings: often enough to sell it out and queue."""
        self.event = open_event(self.conn, total, max_per_booking)
        self.max_per_booking, self.limit = max_per_booking, min(total, max_per_booking)
        self.model = OfferRule(total)
        assert promotion_sql(self.conn, self.event, promotion, TTLS[0]).outcome == "ok"
        self.model.update(promotion, TTLS[0], total)
        self.active: dict[str, uuid.UUID] = {}  # user -> active booking, by the model
        self.gone: list[str] = []  # users whose last booking is cancelled
        self.told: dict[str, tuple] = {}  # user -> their booking as the API last showed it
        self.changes_told = -1  # how many of the model's changes the API has been checked after
        for quantity in data.draw(st.lists(st.integers(1, self.limit), max_size=6), label="first bookings"):
            self.book_as_the_model_says(f"user-{len(self.active)}", quantity)

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
        above 1 can ask for more than they hold. An offer cancelled whole is given up."""
        user = data.draw(st.sampled_from(sorted(self.active)), label="user")
        held = self.model.quantity[self.active[user]]
        quantity = None if share is None else max(1, round(share * held))
        row = cancel_sql(self.conn, self.event, user, quantity)
        if quantity is not None and quantity > held:
            assert row.outcome == "quantity_above_held"
        else:
            self.assert_cancelled_as_the_model_says(
                row, self.active[user], self.model.cancel(self.active[user], quantity)
            )

    def assert_cancelled_as_the_model_says(self, row, booking: uuid.UUID, promoted: list[uuid.UUID]) -> None:
        self.forget_the_cancelled()
        assert (row.outcome, row.booking_id, row.promoted_ids) == ("ok", booking, promoted)
        assert (row.booking_status, row.booking_quantity) == (self.model.status[booking], self.model.quantity[booking])
        assert row.booking_cancel_reason == self.model.reason.get(booking)
        assert (row.waiting_position, row.tickets_ahead) == self.place(booking)
        assert row.promoted_quantities == [self.model.quantity[b] for b in promoted]

    def forget_the_cancelled(self) -> None:
        for user, booking in list(self.active.items()):
            if self.model.status[booking] == CANCELLED:
                del self.active[user]
                self.gone.append(user)

    @rule(promotion=st.sampled_from([AUTO, OFFER]), ttl=st.sampled_from(TTLS), raise_by=st.integers(0, 2))
    def switch_promotion(self, promotion: str, ttl: int, raise_by: int) -> None:
        """The organiser switches the promotion (or only the offers' time), raising the capacity now and
        then: a raise promotes under the new settings; the offers already made keep their deadlines."""
        row = promotion_sql(self.conn, self.event, promotion, ttl, self.model.total + raise_by if raise_by else None)
        promoted = self.model.update(promotion, ttl, self.model.total + raise_by)
        self.limit = min(self.model.total, self.max_per_booking)
        assert (row.outcome, row.promoted_ids) == ("ok", promoted)

    def offered_users(self) -> list[str]:
        return sorted(user for user, booking in self.active.items() if self.model.status[booking] == OFFERED)

    def answer_an_offer(self, data, call) -> tuple:
        """Mostly a user holding an offer, else any active user, who may have none, or one who never booked,
        answers with `call` (accept_sql or decline_sql): their booking, the row, the model's refusal if any."""
        offered = st.sampled_from(self.offered_users())
        user = data.draw(offered | offered | st.sampled_from(sorted(self.active) + ["nobody"]), label="user")
        booking, row = self.active.get(user), call(self.conn, self.event, user)
        return booking, row, "no_offer" if booking is None else self.model.refusal(booking)

    @precondition(lambda self: self.offered_users())
    @rule(data=st.data())
    def accept(self, data) -> None:
        """A user accepts their offer: confirmed while its time lasts, else offer_expired and nothing changes."""
        booking, row, refusal = self.answer_an_offer(data, accept_sql)
        if refusal is None:
            self.model.accept(booking)
        assert (row.outcome, row.booking_status) == (refusal or "ok", None if refusal else CONFIRMED)

    @precondition(lambda self: self.offered_users())
    @rule(data=st.data())
    def decline(self, data) -> None:
        """A user declines their offer: its tickets go on by the rule, unless its time is up (offer_expired)."""
        booking, row, refusal = self.answer_an_offer(data, decline_sql)
        if refusal is not None:
            assert row.outcome == refusal
        else:
            self.assert_cancelled_as_the_model_says(row, booking, self.model.give_up(booking, "declined"))

    @precondition(lambda self: self.model.offers())
    @rule(seconds=st.sampled_from(STEPS))
    def time_passes(self, seconds: int) -> None:
        time_passes(self.conn, self.event, seconds)
        self.model.time_passes(seconds)

    @precondition(lambda self: any(self.model.due(booking) for booking in self.model.offers()))
    @rule()
    def the_sweeper_passes(self) -> None:
        """One pass of the sweeper, as the dispatcher runs it (every event's due offers: earlier runs' too)."""
        swept = sweep_expired_offers(self.engine)
        expired, _offered = self.model.sweep()
        self.forget_the_cancelled()
        assert swept.expired >= len(expired) and swept.busy_events == 0

    def place(self, booking: uuid.UUID) -> tuple[int | None, int | None]:
        if self.model.status[booking] != WAITING:
            return None, None
        return self.model.position(booking), self.model.tickets_ahead(booking)

    @invariant()
    def tables_hold_what_the_model_holds(self) -> None:
        ev = event_row(self.conn, self.event)
        assert (ev.total_tickets, ev.available_tickets, ev.waiting_count, ev.waiting_tickets, ev.promotion) == (
            self.model.total,
            self.model.available,
            len(self.model.queue),
            self.model.waiting_tickets,
            self.model.promotion,
        )
        rows = booking_rows(self.conn, self.event)
        assert {row.id: (row.status, row.quantity, row.cancel_reason) for row in rows} == {
            booking: (status, self.model.quantity[booking], self.model.reason.get(booking))
            for booking, status in self.model.status.items()
        }
        assert {row.id: (row.waiting_position, row.tickets_ahead) for row in rows} == {
            row.id: self.place(row.id) for row in rows
        }
        assert offer_seconds(self.conn, self.event) == {
            booking: self.model.left[booking] for booking in self.model.offers()
        }

    @invariant()
    def the_ledger_holds_every_change_in_order(self) -> None:
        assert [tuple(row) for row in self.conn.execute(LEDGER, {"event": self.event})] == self.model.log

    @invariant()
    def the_api_tells_what_the_model_holds(self) -> None:
        """The event's counts and its waiting list, and each user's booking, after every change."""
        if self.changes_told == len(self.model.log):  # a refusal, or time passing: nothing the API shows
            return
        self.changes_told = len(self.model.log)
        event = self.client.get(f"/api/status/{self.event}").get_json()["event"]
        held = sum(self.model.quantity[b] for b, status in self.model.status.items() if status in audit.HOLDING)
        assert (event["availableTickets"], event["bookedTickets"], event["waitingListCount"], event["promotion"]) == (
            self.model.available,
            held,
            len(self.model.queue),
            self.model.promotion,
        )
        assert event["availableTickets"] + held == event["totalTickets"] == self.model.total
        waiting = self.client.get(f"/api/events/{self.event}/waiting-list", headers=self.admin).get_json()["entries"]
        assert [(entry["id"], entry["position"], entry["ticketsAhead"]) for entry in waiting] == [
            (str(booking), *self.place(booking)) for booking in self.model.queue
        ]
        for user, booking in {user: booking for booking, user in self.model.user.items()}.items():  # the latest
            self.assert_the_api_shows(user, booking)

    def assert_the_api_shows(self, user: str, booking: uuid.UUID) -> None:
        now = (str(booking), self.model.status[booking], self.model.quantity[booking], self.model.reason.get(booking))
        if self.told.get(user) != now:
            shown = self.client.get(f"/api/booking-status/{self.event}/{user}").get_json()["booking"]
            assert (shown["id"], shown["status"], shown["quantity"], shown["cancelReason"]) == now
            assert (shown["offerExpiresAt"] is None) == (booking not in self.model.left)
            self.told[user] = now

    @invariant()
    def flask_check_finds_nothing(self) -> None:
        report = audit.Report()
        audit.check_event(self.conn, self.conn.execute(select(events).where(events.c.id == self.event)).one(), report)
        assert report.problems == []


def test_the_database_functions_follow_the_strict_fifo_rule_and_its_offers_step_by_step(engine, client, admin_headers):
    run_state_machine_as_test(
        lambda: FifoRule(engine, client, admin_headers),
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
