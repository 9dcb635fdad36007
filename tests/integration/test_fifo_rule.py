"""The strict first-come-first-served rule, offers and checkout holds included, as a stateful property:
the SQL functions against a plain model.

Hypothesis drives random books, whole and partial cancels with random quantities, switches of the
event's promotion (auto / offer, with a capacity raise now and then) and of its holds (on / off),
accepts, declines, confirms of holds (with a payment reference or none), the passage of time and the
sweepers, straight into the database functions on PostgreSQL (one connection, autocommit,
as the service sends them; the sweeper as the dispatcher calls it), and the same steps into `OfferRule`,
the rule in plain Python. After every step the two must agree on each answer (outcome, status, place,
tickets ahead, who was promoted or offered, in order) and on the tables (every booking's status,
quantity and cancel reason, every waiting entry's place, every offer's and hold's deadline, the event's counts,
the ledger entry by entry); the API must tell the same; and `flask check`'s own audit of the event must
find nothing.

Time: the database's clock decides whether an offer or a hold is due, and a test cannot move that clock.
So the TTLs are long (minutes) and time passes by moving the event's outstanding deadlines closer in
the table (tests/helpers/queue.py `time_passes`, as test_idempotency ages its keys), in steps that are
multiples of 600 s: an offer or a hold is due exactly when the model says its time is up, however long
the run.
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

from app.booking.domain import (
    AUTO,
    CANCELLED,
    CONFIRMED,
    DEFAULT_OFFER_TTL_SECONDS,
    HELD,
    HOLDS_OFF,
    OFFER,
    OFFERED,
    WAITING,
)
from app.booking.holds import sweep_expired_holds
from app.booking.offers import sweep_expired_offers
from app.database.tables import events
from app.operations import audit
from tests.helpers.queue import (
    accept_sql,
    book_sql,
    booking_rows,
    cancel_sql,
    confirm_sql,
    decline_sql,
    event_row,
    hold_seconds,
    offer_seconds,
    open_event,
    promotion_sql,
    time_passes,
)

TTLS = (600, 1200)  # offers' and holds' times, in the model's seconds: never reached by the run's own duration
HOLD_TTLS = (None, *TTLS)  # None: no holds
REFERENCES = (None, "pi_1", "pi_2")  # what a payment backend may send
STEPS = (600, 1200)  # how far time jumps
LEDGER = text("SELECT kind, booking_id, quantity FROM booking_events WHERE event_id = :event ORDER BY seq")


class OfferRule(audit.Replay):
    """`audit.Replay`'s rule with offers (issue 16) and checkout holds (issue 25). In offer mode the FIFO
    rule offers instead of confirming; an offer holds its tickets until its time is up (`left`, the seconds
    of its TTL not yet passed), then accept and decline are `offer_expired`, a cancel of it is an expiry,
    and the sweeper expires it; whichever ends an offer passes its tickets on by the rule. With holds on
    (`hold_ttl`), whatever would be confirmed (a booking, an auto promotion, an accepted offer) is held
    instead until its time is up (`hold_left`), then confirmed by its payment or expired likewise. `log` is
    every change made, as the ledger must hold it."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.promotion, self.ttl, self.hold_ttl = AUTO, DEFAULT_OFFER_TTL_SECONDS, None  # as an event opens
        self.left: dict[uuid.UUID, int] = {}  # offered booking -> seconds before its deadline
        self.hold_left: dict[uuid.UUID, int] = {}  # held booking (or once held) -> seconds before its deadline
        self.paid: dict[uuid.UUID, str | None] = {}  # a confirmed hold -> its payment's reference
        self.reason: dict[uuid.UUID, str] = {}  # an offer's or a hold's booking -> why it was cancelled
        self.log: list[tuple] = []

    def apply(self, entry) -> list[str]:
        self.log.append((entry.kind, entry.booking_id, entry.quantity))
        return super().apply(entry)

    def book(self, booking_id: uuid.UUID, user_id: str, quantity: int) -> str:
        """Replay's rule, the tickets held for the payment with holds on (book_ticket.sql)."""
        if self.hold_ttl is None or self.queue or quantity > self.available:
            return super().book(booking_id, user_id, quantity)
        self.take(booking_id, user_id, quantity)
        return HELD

    def take(self, booking_id: uuid.UUID, user_id: str, quantity: int) -> None:
        """A hold of the booking's tickets for its payment: at a booking, a promotion, an accept."""
        self.apply(audit.Change("held", booking_id, user_id, quantity))
        self.hold_left[booking_id] = self.hold_ttl

    def _promote(self) -> list[uuid.UUID]:
        """Replay's strict FIFO walk, offering in offer mode and holding with holds on (promotion_terms.sql)."""
        promoted = []
        while self.head_fits():
            head = self.queue[0]
            promoted.append(head)
            if self.promotion == OFFER:
                self.apply(audit.Change("offered", head, self.user[head], self.quantity[head]))
                self.left[head] = self.ttl
            elif self.hold_ttl is not None:
                self.take(head, self.user[head], self.quantity[head])
            else:
                self.apply(audit.Change("promoted", head, self.user[head], self.quantity[head]))
        return promoted

    def update(self, promotion: str, ttl: int, total: int, hold_ttl: int | None) -> list[uuid.UUID]:
        """An organiser's PATCH: one `event_updated` entry if it changes anything (update_event.sql), then
        a new capacity, whose raise promotes under the new settings; the bookings it promotes."""
        if (promotion, ttl, total, hold_ttl) != (self.promotion, self.ttl, self.total, self.hold_ttl):
            self.apply(audit.Change("event_updated", None, None, None))
        self.promotion, self.ttl, self.hold_ttl = promotion, ttl, hold_ttl
        return self.resize(total) if total != self.total else []

    def due(self, booking: uuid.UUID) -> bool:
        return self.status[booking] == OFFERED and self.left[booking] <= 0

    def hold_due(self, booking: uuid.UUID) -> bool:
        return self.status[booking] == HELD and self.hold_left[booking] <= 0

    def confirm_refusal(self, booking: uuid.UUID | None, reference: str | None) -> str | None:
        """Why a confirm of the user's latest booking is refused, if it is (confirm_hold.sql)."""
        if booking is None:
            return "no_hold"
        if self.status[booking] == HELD:
            return "hold_expired" if self.hold_due(booking) else None
        if self.reason.get(booking) == "hold_expired":
            return "hold_expired"
        if booking in self.paid and self.status[booking] == CONFIRMED:
            return None if self.paid[booking] == reference else "already_confirmed"
        return "no_hold"

    def confirm(self, booking: uuid.UUID, reference: str | None) -> None:
        """A hold paid for, unless it was already (a repeat changes nothing)."""
        if booking not in self.paid:
            self.apply(audit.Change("paid", booking, self.user[booking], self.quantity[booking]))
            self.paid[booking] = reference

    def refusal(self, booking: uuid.UUID) -> str | None:
        """Why an accept or a decline of the booking's offer is refused, if it is."""
        if self.status[booking] != OFFERED:
            return "no_offer"
        return "offer_expired" if self.due(booking) else None

    def cancel(self, booking: uuid.UUID, quantity: int | None = None) -> list[uuid.UUID]:
        """A whole cancel of an offer gives it up: declined, or expired if its time is up; of a hold past
        its time, it is an expiry too."""
        whole = quantity in (None, self.quantity[booking])
        if self.status[booking] == OFFERED and whole:
            return self.give_up(booking, "expired" if self.due(booking) else "declined")
        if self.hold_due(booking) and whole:
            return self.give_up(booking, "hold_expired")
        return super().cancel(booking, quantity)

    def give_up(self, booking: uuid.UUID, reason: str) -> list[uuid.UUID]:
        self.apply(audit.Change(reason, booking, self.user[booking], self.quantity[booking]))
        self.reason[booking] = reason
        return self._promote()

    def accept(self, booking: uuid.UUID) -> str:
        """An offer accepted: confirmed, or held for its payment with holds on; its status."""
        if self.hold_ttl is not None:
            self.take(booking, self.user[booking], self.quantity[booking])
            return HELD
        self.apply(audit.Change("accepted", booking, self.user[booking], self.quantity[booking]))
        return CONFIRMED

    def time_passes(self, seconds: int) -> None:
        for booking in self.offers():
            self.left[booking] -= seconds
        for booking in self.holds():
            self.hold_left[booking] -= seconds

    def sweep(self, due=None, reason: str = "expired") -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """What expire_offers does (expire_holds, with the holds' `due` and `reason`): every due one
        expired, oldest first, then one FIFO walk."""
        expired = [booking for booking in self.status if (due or self.due)(booking)]
        for booking in expired:
            self.apply(audit.Change(reason, booking, self.user[booking], self.quantity[booking]))
            self.reason[booking] = reason
        return expired, self._promote() if expired else []

    def offers(self) -> list[uuid.UUID]:
        return [booking for booking, status in self.status.items() if status == OFFERED]

    def holds(self) -> list[uuid.UUID]:
        return [booking for booking, status in self.status.items() if status == HELD]


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
        hold_ttl=st.sampled_from(HOLD_TTLS),
        data=st.data(),
    )
    def open(self, total: int, max_per_booking: int, promotion: str, hold_ttl: int | None, data) -> None:
        """An event, in either mode, with holds or without, and its first bookings: often enough to sell it
        out and queue."""
        self.event = open_event(self.conn, total, max_per_booking)
        self.max_per_booking, self.limit = max_per_booking, min(total, max_per_booking)
        self.model = OfferRule(total)
        assert promotion_sql(self.conn, self.event, promotion, TTLS[0], None, hold_ttl).outcome == "ok"
        self.model.update(promotion, TTLS[0], total, hold_ttl)
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

    @rule(
        promotion=st.sampled_from([AUTO, OFFER]),
        ttl=st.sampled_from(TTLS),
        hold_ttl=st.sampled_from(HOLD_TTLS),
        raise_by=st.integers(0, 2),
    )
    def switch_promotion(self, promotion: str, ttl: int, hold_ttl: int | None, raise_by: int) -> None:
        """The organiser switches the promotion, the offers' time or the holds (on, off), raising the capacity
        now and then: a raise promotes under the new settings; offers and holds made keep their deadlines."""
        total = self.model.total + raise_by if raise_by else None
        row = promotion_sql(self.conn, self.event, promotion, ttl, total, HOLDS_OFF if hold_ttl is None else hold_ttl)
        promoted = self.model.update(promotion, ttl, self.model.total + raise_by, hold_ttl)
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
        status = None if refusal else self.model.accept(booking)
        assert (row.outcome, row.booking_status) == (refusal or "ok", status)

    @precondition(lambda self: self.offered_users())
    @rule(data=st.data())
    def decline(self, data) -> None:
        """A user declines their offer: its tickets go on by the rule, unless its time is up (offer_expired)."""
        booking, row, refusal = self.answer_an_offer(data, decline_sql)
        if refusal is not None:
            assert row.outcome == refusal
        else:
            self.assert_cancelled_as_the_model_says(row, booking, self.model.give_up(booking, "declined"))

    @precondition(lambda self: self.model.user)
    @rule(data=st.data(), reference=st.sampled_from(REFERENCES))
    def confirm(self, data, reference: str | None) -> None:
        """The payment backend confirms a user's hold, mostly one held, else anyone who booked or nobody: held
        while its time lasts, else hold_expired; a repeat with the same reference is harmless."""
        holders = sorted(self.model.user[b] for b in self.model.holds()) or ["nobody"]
        user = data.draw(
            st.sampled_from(holders) | st.sampled_from(sorted(set(self.model.user.values()))), label="user"
        )
        latest = {name: booking for booking, name in self.model.user.items()}.get(user)
        row, refusal = (
            confirm_sql(self.conn, self.event, user, reference),
            self.model.confirm_refusal(latest, reference),
        )
        if refusal is None:
            self.model.confirm(latest, reference)
        assert (row.outcome, row.booking_status) == (refusal or "ok", None if refusal else CONFIRMED)

    @precondition(lambda self: self.model.offers() or self.model.holds())
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

    @precondition(lambda self: any(self.model.hold_due(booking) for booking in self.model.holds()))
    @rule()
    def the_hold_sweeper_passes(self) -> None:
        """One pass of the hold sweeper, as the background process runs it (every event's due holds)."""
        swept = sweep_expired_holds(self.engine)
        expired, _promoted = self.model.sweep(self.model.hold_due, "hold_expired")
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
        assert (ev.hold_ttl_seconds, ev.held_tickets) == (
            self.model.hold_ttl,
            sum(self.model.quantity[booking] for booking in self.model.holds()),
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
        assert hold_seconds(self.conn, self.event) == {
            booking: self.model.hold_left[booking] for booking in self.model.holds()
        }
        assert {row.id: row.payment_reference for row in rows if row.id in self.model.paid} == self.model.paid

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
            assert (shown["holdExpiresAt"] is None) == (booking not in self.model.hold_left)
            self.told[user] = now

    @invariant()
    def flask_check_finds_nothing(self) -> None:
        report = audit.Report()
        audit.check_event(self.conn, self.conn.execute(select(events).where(events.c.id == self.event)).one(), report)
        assert report.problems == []


def test_the_database_functions_follow_the_strict_fifo_rule_its_offers_and_holds_step_by_step(
    engine, client, admin_headers
):
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
