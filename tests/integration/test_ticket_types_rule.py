"""The FIFO rule with ticket types (issue 26) as a stateful property: the API against a plain model.

Hypothesis opens one event per run with 1..4 types under a shared cap (the types' totals may add up to
more than the event's), in either promotion mode, with holds or without, and drives random books of
several items (now and then one over a limit), whole cancels and partial ones by items, raises of the
event's total and of a type's (a lone type is the event: its total is the event's), a type lowered to
what it holds (or below: refused), a type added (the one-to-two path included), switches of the
promotion and of the holds, accepts, declines, confirms, the passage of time and the sweepers, all
through the HTTP API; and the same steps into
`tests.helpers.typed_rule.TypedSale`, the contract's rule written in plain Python. After every step
they must agree on every answer (status, items, who was promoted, in order) and on the tables (every
booking's status, items and cancel reason, each type's total, the ledger's booking entries in order);
`flask check`'s audit of the event (the ledger replayed by the rule with types) must find nothing;
the invariants per type and for the event must hold in the tables (type_violations: the counters, each
type within its total, the queue stable); and the API must show each type's counts and each waiting
user's place, per item.

Time passes as in tests/integration/test_fifo_rule.py: the TTLs are minutes, and the deadlines of the
event's offers and holds are moved closer in the table, by multiples of 600 s.
"""

from __future__ import annotations

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

from app.booking.domain import AUTO, CANCELLED, OFFER, OFFERED, WAITING
from app.booking.holds import sweep_expired_holds
from app.booking.offers import sweep_expired_offers
from app.database.tables import events
from app.operations import audit
from tests.helpers.queue import time_passes
from tests.helpers.typed_rule import TicketType, TypedSale, read_tables, tables_violations

CODES = ("adult", "child", "vip", "seat", "extra")  # the fifth is only ever added by a PATCH
TTLS = (600, 1200)
HOLD_TTLS = (None, *TTLS)
REFERENCES = (None, "pi_1", "pi_2")
STEPS = (600, 1200)
LEDGER = text("""
SELECT kind, booking_id FROM booking_events WHERE event_id = :event AND booking_id IS NOT NULL ORDER BY seq
""")


def items_body(items: dict[str, int]) -> list[dict]:
    return [{"ticketType": code, "quantity": quantity} for code, quantity in items.items()]


def items_shown(booking: dict) -> dict[str, int]:
    return {item["ticketType"]: item["quantity"] for item in booking["items"] if item["quantity"]}


class TypedRule(RuleBasedStateMachine):
    """One event per run; `model` is the contract's answer to every step."""

    def __init__(self, engine, client, admin_headers) -> None:
        super().__init__()
        self.engine, self.client, self.admin = engine, client, admin_headers
        self.conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def teardown(self) -> None:
        self.conn.close()

    # --- the calls --------------------------------------------------------------------------------

    def post(self, path: str, body: dict, admin: bool = False):
        response = self.client.post(path, json=body, headers=self.admin if admin else {})
        return response.status_code, response.get_json()

    def patch(self, body: dict):
        response = self.client.patch(f"/api/events/{self.event}", json=body, headers=self.admin)
        return response.status_code, response.get_json()

    def act(self, path: str, user: str, **fields):
        return self.post(path, {"eventId": self.event, "userId": user, **fields})

    # --- the event ----------------------------------------------------------------------------------

    @initialize(
        total=st.integers(1, 8),
        max_per_booking=st.integers(1, 5),
        promotion=st.sampled_from([AUTO, OFFER]),
        hold_ttl=st.sampled_from(HOLD_TTLS),
        data=st.data(),
    )
    def open(self, total: int, max_per_booking: int, promotion: str, hold_ttl: int | None, data) -> None:
        """An event of 1..4 types, each of 1..total tickets, with a maxPerBooking of its own or not; and
        its first bookings, often enough to sell it out and queue."""
        count = data.draw(st.integers(1, 4), label="types")
        types = {
            code: TicketType(data.draw(st.integers(1, total)), data.draw(st.none() | st.integers(1, 3)))
            for code in CODES[:count]
        }
        if count == 1:  # a lone type is the event: the event's total, the event's maxPerBooking
            types = {CODES[0]: TicketType(total)}
        body = {
            "totalTickets": total,
            "maxPerBooking": max_per_booking,
            "promotion": promotion,
            "offerTtlSeconds": TTLS[0],
            "holdTtlSeconds": hold_ttl,
            "ticketTypes": [self.type_body(code, kind) for code, kind in types.items()],
        }
        status, opened = self.post("/api/initialize", body, admin=True)
        assert status == 201, opened
        self.event = opened["event"]["id"]
        self.model = TypedSale(total, max_per_booking, types, promotion, TTLS[0], hold_ttl)
        self.active: dict[str, str] = {}  # user -> active booking id, by the model
        self.gone: list[str] = []  # users whose last booking is cancelled
        self.users = 0
        self.shown_at: tuple | None = None  # the model's state when the API was last checked
        for _ in range(data.draw(st.integers(0, 6), label="first bookings")):
            self.book_as_the_model_says(self.new_user(), self.draw_items(data))

    @staticmethod
    def type_body(code: str, kind: TicketType) -> dict:
        body = {"code": code, "name": code.title(), "totalTickets": kind.total}
        return body if kind.max_per_booking is None else {**body, "maxPerBooking": kind.max_per_booking}

    def new_user(self) -> str:
        self.users += 1
        return f"user-{self.users}"

    def draw_items(self, data, most: int = 3) -> dict[str, int]:
        """1..3 types of the event, 1..most tickets of each."""
        codes = data.draw(st.lists(st.sampled_from(list(self.model.types)), min_size=1, max_size=3, unique=True))
        return {code: data.draw(st.integers(1, most), label=f"{code} tickets") for code in codes}

    # --- books --------------------------------------------------------------------------------------

    @rule(data=st.data())
    def book(self, data) -> None:
        """A new user books items: within the limits, or now and then over one (400 errors.items)."""
        user, items = self.new_user(), self.draw_items(data, most=data.draw(st.sampled_from([2, 2, 2, 4])))
        if self.model.limit_refusal(items):
            status, refused = self.act("/api/book", user, items=items_body(items))
            assert (status, refused["code"], "items" in refused.get("errors", {})) == (400, "invalid_request", True)
        else:
            self.book_as_the_model_says(user, items)

    @precondition(lambda self: self.gone)
    @rule(data=st.data())
    def book_again(self, data) -> None:
        """A user whose booking was cancelled books anew, at the back."""
        user = self.gone.pop(data.draw(st.integers(0, len(self.gone) - 1), label="user"))
        items = self.draw_items(data)
        if not self.model.limit_refusal(items):
            self.book_as_the_model_says(user, items)

    def book_as_the_model_says(self, user: str, items: dict[str, int]) -> None:
        if self.model.limit_refusal(items):
            return
        status, booked = self.act("/api/book", user, items=items_body(items))
        assert status == 201, booked
        booking = booked["booking"]
        self.active[user] = booking["id"]
        assert (booking["status"], items_shown(booking)) == (self.model.book(booking["id"], user, items), items)
        self.assert_place(booking)

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def book_twice(self, data) -> None:
        """A user with an active booking books again, within the limits (else the limits answer first)."""
        user, items = data.draw(st.sampled_from(sorted(self.active)), label="user"), self.draw_items(data)
        if not self.model.limit_refusal(items):
            status, refused = self.act("/api/book", user, items=items_body(items))
            assert (status, refused["code"]) == (409, "already_booked")

    # --- cancels --------------------------------------------------------------------------------------

    @precondition(lambda self: self.active)
    @rule(data=st.data(), whole=st.booleans())
    def cancel(self, data, whole: bool) -> None:
        """An active user cancels all, or gives up some tickets of some of their types (now and then more
        than they hold of one: refused, nothing changes). A whole cancel of an offer gives it up."""
        user = data.draw(st.sampled_from(sorted(self.active)), label="user")
        booking = self.active[user]
        held = self.model.bookings[booking].items
        items = None
        if not whole:
            codes = data.draw(st.lists(st.sampled_from(sorted(held)), min_size=1, unique=True), label="types")
            items = {code: data.draw(st.integers(1, held[code] + 1), label=f"{code} given up") for code in codes}
        status, answer = self.act("/api/cancel", user, **({} if items is None else {"items": items_body(items)}))
        if items is not None and self.model.cancel_refusal(booking, items):
            assert (status, answer["code"]) in ((400, "invalid_request"), (409, "quantity_above_held")), answer
            return
        assert status == 200, answer
        promoted = self.model.cancel(booking, items)
        self.assert_as_the_model_says(answer["booking"], promoted, answer["promotedBookings"])

    def assert_as_the_model_says(self, booking: dict, promoted: list, shown: list[dict]) -> None:
        """A booking as the model holds it, and the promoted ones, in the walk's order, with their items."""
        b = self.model.bookings[booking["id"]]
        assert (booking["status"], booking.get("cancelReason")) == (b.status, b.reason)
        if b.status != CANCELLED:
            assert items_shown(booking) == b.items
        assert [(p["id"], p["status"], items_shown(p)) for p in shown] == [
            (p, self.model.bookings[p].status, self.model.bookings[p].items) for p in promoted
        ]
        self.forget_the_cancelled()

    def forget_the_cancelled(self) -> None:
        for user, booking in list(self.active.items()):
            if self.model.bookings[booking].status == CANCELLED:
                del self.active[user]
                self.gone.append(user)

    # --- the organiser ----------------------------------------------------------------------------------

    @rule(by=st.integers(1, 3))
    def raise_the_event(self, by: int) -> None:
        """The event's total raised: the walk promotes by the rule."""
        status, answer = self.patch({"totalTickets": self.model.total + by})
        assert status == 200, answer
        promoted = self.model.update(total=self.model.total + by)
        self.assert_promoted(answer["promotedBookings"], promoted)

    @rule(data=st.data(), by=st.integers(1, 3))
    def raise_a_type(self, data, by: int) -> None:
        """A type's total raised (above the event's: 400, nothing changes; a lone type's raises the event's):
        the walk promotes by the rule."""
        code = data.draw(st.sampled_from(list(self.model.types)), label="type")
        kind = self.model.types[code]
        status, answer = self.patch({"ticketTypes": [{"code": code, "totalTickets": kind.total + by}]})
        if kind.total + by > self.model.total and len(self.model.types) > 1:
            assert (status, answer["code"]) == (400, "invalid_request"), answer
            return
        assert status == 200, answer
        promoted = self.model.update(types={code: TicketType(kind.total + by, kind.max_per_booking)})
        self.assert_promoted(answer["promotedBookings"], promoted)

    @precondition(lambda self: len(self.model.types) > 1)
    @rule(data=st.data(), below=st.booleans())
    def lower_a_type_to_what_it_holds(self, data, below: bool) -> None:
        """A type's total set to what its bookings hold, which stops its sales; below it is 409. (A lone
        type is the event, whose lowering is v2's.)"""
        code = data.draw(st.sampled_from(list(self.model.types)), label="type")
        kind, taken = self.model.types[code], self.model.taken(code)
        if below and taken == 0:
            return
        status, answer = self.patch({"ticketTypes": [{"code": code, "totalTickets": max(taken - below, 0)}]})
        if below:
            assert (status, answer["code"]) == (409, "capacity_below_booked"), answer
            return
        assert status == 200 and answer["promotedBookings"] == [], answer
        self.model.update(types={code: TicketType(taken, kind.max_per_booking)})

    @precondition(lambda self: len(self.model.types) < len(CODES))
    @rule(data=st.data())
    def add_a_type(self, data) -> None:
        """A new type by PATCH (an event of one type gets its second: its bookings get items)."""
        code = CODES[len(self.model.types)]
        kind = TicketType(data.draw(st.integers(1, self.model.total)), data.draw(st.none() | st.integers(1, 3)))
        status, answer = self.patch({"ticketTypes": [self.type_body(code, kind)]})
        assert status == 200 and answer["promotedBookings"] == [], answer
        self.model.update(types={code: kind})

    def assert_promoted(self, shown: list[dict], promoted: list) -> None:
        assert [(p["id"], p["status"], items_shown(p)) for p in shown] == [
            (p, self.model.bookings[p].status, self.model.bookings[p].items) for p in promoted
        ]
        self.forget_the_cancelled()

    @rule(promotion=st.sampled_from([AUTO, OFFER]), ttl=st.sampled_from(TTLS), hold_ttl=st.sampled_from(HOLD_TTLS))
    def switch_promotion(self, promotion: str, ttl: int, hold_ttl: int | None) -> None:
        """The organiser switches the promotion, the offers' time or the holds: no walk, nothing freed."""
        status, answer = self.patch({"promotion": promotion, "offerTtlSeconds": ttl, "holdTtlSeconds": hold_ttl})
        assert status == 200 and answer["promotedBookings"] == [], answer
        self.model.switch(promotion, ttl, hold_ttl)

    # --- offers, holds, time ----------------------------------------------------------------------------

    def offered_users(self) -> list[str]:
        return sorted(user for user, booking in self.active.items() if self.model.bookings[booking].status == OFFERED)

    @precondition(lambda self: self.offered_users())
    @rule(data=st.data(), accept=st.booleans())
    def answer_an_offer(self, data, accept: bool) -> None:
        """A user holding an offer (all its items) accepts or declines it; past its time: offer_expired."""
        user = data.draw(st.sampled_from(self.offered_users()), label="user")
        booking = self.active[user]
        status, answer = self.act("/api/accept" if accept else "/api/decline", user)
        refusal = self.model.offer_refusal(booking)
        if refusal:
            assert (status, answer["code"]) == (409, refusal), answer
        elif accept:
            assert (status, answer["booking"]["status"]) == (200, self.model.accept(booking)), answer
        else:
            assert status == 200, answer
            promoted = self.model.give_up(booking, "declined")
            self.assert_as_the_model_says(answer["booking"], promoted, answer["promotedBookings"])

    @precondition(lambda self: self.model.holds())
    @rule(data=st.data(), reference=st.sampled_from(REFERENCES))
    def confirm(self, data, reference: str | None) -> None:
        """The payment backend confirms a hold (all its items): while its time lasts."""
        booking = data.draw(st.sampled_from(self.model.holds()), label="hold")
        status, answer = self.post(
            "/api/confirm",
            {"eventId": self.event, "userId": self.model.bookings[booking].user}
            | ({"paymentReference": reference} if reference else {}),
        )
        refusal = self.model.confirm_refusal(booking, reference)
        if refusal:
            assert (status, answer["code"]) == (409, refusal), answer
        else:
            self.model.confirm(booking, reference)
            assert (status, answer["booking"]["status"]) == (200, "confirmed"), answer

    @precondition(lambda self: self.model.offers() or self.model.holds())
    @rule(seconds=st.sampled_from(STEPS))
    def time_passes(self, seconds: int) -> None:
        time_passes(self.conn, self.event, seconds)
        self.model.time_passes(seconds)

    @precondition(lambda self: any(self.model.due(b) for b in self.model.offers()))
    @rule()
    def the_offer_sweeper_passes(self) -> None:
        sweep_expired_offers(self.engine)
        self.model.sweep(holds=False)
        self.forget_the_cancelled()

    @precondition(lambda self: any(self.model.due(b) for b in self.model.holds()))
    @rule()
    def the_hold_sweeper_passes(self) -> None:
        sweep_expired_holds(self.engine)
        self.model.sweep(holds=True)
        self.forget_the_cancelled()

    # --- what must hold after every step -------------------------------------------------------------

    def assert_place(self, booking: dict) -> None:
        """A waiting booking's place, per item, as the model counts it; none for the others."""
        place = self.model.place(booking["id"])
        if place is None:
            assert booking.get("waitingPosition") is None and booking.get("ticketsAhead") is None, booking
            return
        position, ahead = place
        shown = {item["ticketType"]: item.get("ticketsAhead") for item in booking["items"]}
        assert (booking["waitingPosition"], booking["ticketsAhead"], shown) == (position, sum(ahead.values()), ahead)

    @invariant()
    def the_tables_hold_what_the_model_holds_and_every_invariant(self) -> None:
        tables = read_tables(self.conn, self.event)
        assert tables_violations(tables) == []
        assert (tables.event.total_tickets, tables.event.available_tickets) == (self.model.total, self.model.available)
        assert {kind.code: kind.total_tickets for kind in tables.types} == {
            code: kind.total for code, kind in self.model.types.items()
        }
        assert [kind.code for kind in tables.types] == list(self.model.types)  # by position: the order added
        assert {str(row.id): (row.status, row.cancel_reason) for row in tables.bookings} == {
            booking: (b.status, b.reason) for booking, b in self.model.bookings.items()
        }
        assert {str(row.id): tables.items[row.id] for row in tables.bookings if row.status != CANCELLED} == {
            booking: b.items for booking, b in self.model.bookings.items() if b.status != CANCELLED
        }

    @invariant()
    def flask_check_finds_nothing(self) -> None:
        """The audit replays the ledger by the rule with types: it must agree with the tables."""
        report = audit.Report()
        audit.check_event(self.conn, self.conn.execute(select(events).where(events.c.id == self.event)).one(), report)
        assert report.problems == []

    @invariant()
    def the_ledger_holds_every_booking_change_in_order(self) -> None:
        ledger = self.conn.execute(LEDGER, {"event": self.event})
        assert [(row.kind, str(row.booking_id)) for row in ledger] == self.model.log

    @invariant()
    def the_api_shows_each_type_and_each_place(self) -> None:
        moment = (
            len(self.model.log),
            self.model.total,
            tuple((k.total, k.max_per_booking) for k in self.model.types.values()),
        )
        if moment == self.shown_at:  # a refusal, or time passing: nothing the API shows has changed
            return
        self.shown_at = moment
        event = self.client.get(f"/api/status/{self.event}").get_json()["event"]
        assert (event["totalTickets"], event["availableTickets"], event["waitingTickets"]) == (
            self.model.total,
            self.model.available,
            self.model.waiting_tickets(),
        )
        room = self.model.type_room()
        assert [
            (t["code"], t["totalTickets"], t["availableTickets"], t["waitingTickets"]) for t in event["ticketTypes"]
        ] == [
            (code, kind.total, room[code], self.model.waiting_tickets(code)) for code, kind in self.model.types.items()
        ]
        for booking, _ in self.model.queue():
            user = self.model.bookings[booking].user
            shown = self.client.get(f"/api/booking-status/{self.event}/{user}").get_json()["booking"]
            assert (shown["id"], shown["status"]) == (booking, WAITING)
            self.assert_place(shown)


def test_the_api_follows_the_fifo_rule_with_ticket_types_step_by_step(engine, client, admin_headers):
    run_state_machine_as_test(
        lambda: TypedRule(engine, client, admin_headers),
        settings=settings(
            max_examples=50,
            stateful_step_count=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
