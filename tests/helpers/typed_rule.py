"""Ticket types (issue 26) for the tests: the FIFO rule with types as plain Python, written from the
contract alone (an oracle independent of app/booking/ticket_walk.py and of the SQL), a sale modelled on
it (`TypedSale`: books, whole and partial cancels, raises, offers, holds), and the invariants per type
and for the event read straight from the tables (`type_violations`: the counts, each type within its
total, nobody overtaken by a later booking that shares a type with it, the queue stable).

A booking's items are a dict {type code: quantity}. In the tables a booking of an event that has only
ever had one type keeps its item arrays NULL, meaning all its tickets are of the first type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from app.booking.domain import AUTO, CANCELLED, CONFIRMED, DEFAULT_OFFER_TTL_SECONDS, HELD, OFFER, OFFERED, WAITING

TAKING = (CONFIRMED, OFFERED, HELD)  # the statuses whose tickets are taken from the event and its types


def walk(queue: Iterable[tuple[object, dict[str, int]]], room: int, type_room: dict[str, int]) -> list:
    """The contract's walk over the waiting entries, oldest first: the ids it promotes, in order.
    1. the event lacks room for the entry's total: stop; 2. it wants a type blocked in this walk: passed
    over, and each type it wants is blocked; 3. one of its types lacks room for its item: likewise;
    4. else it is promoted."""
    type_room, blocked, promoted = dict(type_room), set(), []
    for booking, items in queue:
        wanted = sum(items.values())
        if wanted > room:
            break
        if blocked & items.keys() or any(quantity > type_room[code] for code, quantity in items.items()):
            blocked |= items.keys()
            continue
        promoted.append(booking)
        room -= wanted
        for code, quantity in items.items():
            type_room[code] -= quantity
    return promoted


@dataclass
class TicketType:
    total: int
    max_per_booking: int | None = None  # None: the event's


@dataclass
class Booking:
    user: str
    items: dict[str, int]
    status: str
    reason: str | None = None  # why it was cancelled, if not by its user
    left: int | None = None  # an offer's seconds before its deadline
    hold_left: int | None = None  # a hold's (or a once-held booking's) seconds before its deadline
    paid: bool = False
    reference: str | None = None

    @property
    def quantity(self) -> int:
        return sum(self.items.values())


@dataclass
class TypedSale:
    """One event with types, as the contract says it behaves. `log` is every booking change, (kind,
    booking id), in the order the ledger must hold them."""

    total: int
    max_per_booking: int
    types: dict[str, TicketType]  # by code, in the order they were added
    promotion: str = AUTO
    ttl: int = DEFAULT_OFFER_TTL_SECONDS
    hold_ttl: int | None = None
    bookings: dict[object, Booking] = field(default_factory=dict)  # by id, in booking order
    log: list[tuple[str, object]] = field(default_factory=list)

    # --- what the event holds -------------------------------------------------------------------

    def taken(self, code: str | None = None) -> int:
        return sum(b.items.get(code, 0) if code else b.quantity for b in self.bookings.values() if b.status in TAKING)

    @property
    def available(self) -> int:
        return self.total - self.taken()

    def type_room(self) -> dict[str, int]:
        return {code: kind.total - self.taken(code) for code, kind in self.types.items()}

    def queue(self) -> list[tuple[object, dict[str, int]]]:
        return [(booking, b.items) for booking, b in self.bookings.items() if b.status == WAITING]

    def waiting_tickets(self, code: str | None = None) -> int:
        return sum(sum(items.values()) if code is None else items.get(code, 0) for _, items in self.queue())

    def place(self, booking) -> tuple[int, dict[str, int]] | None:
        """(waitingPosition, each item's ticketsAhead) of a waiting booking; None if it is not waiting."""
        queue = self.queue()
        ids = [b for b, _ in queue]
        if booking not in ids:
            return None
        ahead = queue[: ids.index(booking)]
        items = self.bookings[booking].items
        return len(ahead) + 1, {code: sum(i.get(code, 0) for _, i in ahead) for code in items}

    def due(self, booking) -> bool:
        """Whether an offer's or a hold's time is up."""
        b = self.bookings[booking]
        return (b.left if b.status == OFFERED else b.hold_left) <= 0

    def holds(self) -> list:
        return [booking for booking, b in self.bookings.items() if b.status == HELD]

    def offers(self) -> list:
        return [booking for booking, b in self.bookings.items() if b.status == OFFERED]

    # --- the rules --------------------------------------------------------------------------------

    def limit_refusal(self, items: dict[str, int]) -> bool:
        """Whether a booking of `items` is refused (400 errors.items): unknown type, a quantity below 1,
        above its type's maxPerBooking (the event's by default) or total, or a sum above the event's
        maxPerBooking or total (it could never get its tickets)."""
        if not items or set(items) - set(self.types) or min(items.values()) < 1:
            return True
        if sum(items.values()) > min(self.max_per_booking, self.total):
            return True
        return any(
            quantity > min(self.types[code].max_per_booking or self.max_per_booking, self.types[code].total)
            for code, quantity in items.items()
        )

    def book(self, booking, user: str, items: dict[str, int]) -> str:
        """A new booking is the newest entry of the walk: it gets its tickets iff the walk promotes it.
        The queue was stable, so the walk can promote nobody else."""
        self.bookings[booking] = Booking(user, dict(items), WAITING)
        promoted = walk(self.queue(), self.available, self.type_room())
        assert promoted in ([], [booking]), f"the queue was not stable: {promoted}"
        if not promoted:
            self.log.append(("waitlisted", booking))
        elif self.hold_ttl is None:
            self.bookings[booking].status = CONFIRMED
            self.log.append(("booked", booking))
        else:
            self.take(booking)
        return self.bookings[booking].status

    def take(self, booking) -> None:
        """Held for its payment, at a booking, a promotion or an accept (holds on)."""
        self.bookings[booking].status, self.bookings[booking].hold_left = HELD, self.hold_ttl
        self.log.append(("held", booking))

    def promote(self) -> list:
        """The walk after tickets are freed or a waiting entry leaves or shrinks: offered in offer mode,
        held with holds on, else confirmed; the promoted ids, in order."""
        promoted = walk(self.queue(), self.available, self.type_room())
        for booking in promoted:
            if self.promotion == OFFER:
                self.bookings[booking].status, self.bookings[booking].left = OFFERED, self.ttl
                self.log.append(("offered", booking))
            elif self.hold_ttl is not None:
                self.take(booking)
            else:
                self.bookings[booking].status = CONFIRMED
                self.log.append(("promoted", booking))
        return promoted

    def cancel_refusal(self, booking, items: dict[str, int] | None) -> bool:
        """Whether a partial cancel asks for more of a type than the booking holds (or a type it has not)."""
        held = self.bookings[booking].items
        return items is not None and any(quantity > held.get(code, 0) for code, quantity in items.items())

    def cancel(self, booking, items: dict[str, int] | None = None) -> list:
        """A whole cancel (items None, or every ticket it holds), or a partial one giving up `items`; an offer
        cancelled whole is declined (expired past its time), a hold past its time is hold_expired; then the walk."""
        b = self.bookings[booking]
        if items is None or items == {code: q for code, q in b.items.items()}:
            if b.status == OFFERED:
                return self.give_up(booking, "expired" if b.left <= 0 else "declined")
            if b.status == HELD and b.hold_left <= 0:
                return self.give_up(booking, "hold_expired")
            b.status = CANCELLED
            self.log.append(("cancelled", booking))
        else:
            b.items = {code: q - items.get(code, 0) for code, q in b.items.items() if q > items.get(code, 0)}
            self.log.append(("reduced", booking))
        return self.promote()

    def give_up(self, booking, reason: str) -> list:
        self.bookings[booking].status, self.bookings[booking].reason = CANCELLED, reason
        self.log.append((reason, booking))
        return self.promote()

    def update(self, total: int | None = None, types: dict[str, TicketType] | None = None) -> list:
        """A PATCH of the event's total and of types (added or changed); a raise walks. A lone type is the
        event: its total is the event's, whichever of the two changes."""
        self.total = total or self.total
        self.types.update(types or {})
        if len(self.types) == 1:
            (lone,) = self.types.values()
            self.total = lone.total if types else self.total
            lone.total = self.total
        return self.promote()

    def switch(self, promotion: str, ttl: int, hold_ttl: int | None) -> None:
        self.promotion, self.ttl, self.hold_ttl = promotion, ttl, hold_ttl

    def accept(self, booking) -> str:
        if self.hold_ttl is not None:
            self.take(booking)
        else:
            self.bookings[booking].status = CONFIRMED
            self.log.append(("accepted", booking))
        return self.bookings[booking].status

    def offer_refusal(self, booking) -> str | None:
        b = self.bookings.get(booking)
        if b is None or b.status != OFFERED:
            return "no_offer"
        return "offer_expired" if b.left <= 0 else None

    def confirm_refusal(self, booking, reference: str | None) -> str | None:
        """Why the payment's confirm of the user's latest booking is refused, if it is."""
        b = self.bookings.get(booking)
        if b is None:
            return "no_hold"
        if b.status == HELD:
            return "hold_expired" if b.hold_left <= 0 else None
        if b.reason == "hold_expired":
            return "hold_expired"
        if b.paid and b.status == CONFIRMED:
            return None if b.reference == reference else "already_confirmed"
        return "no_hold"

    def confirm(self, booking, reference: str | None) -> None:
        b = self.bookings[booking]
        if not b.paid:
            b.status, b.paid, b.reference = CONFIRMED, True, reference
            self.log.append(("paid", booking))

    def time_passes(self, seconds: int) -> None:
        for booking in self.offers():
            self.bookings[booking].left -= seconds
        for booking in self.holds():
            self.bookings[booking].hold_left -= seconds

    def sweep(self, holds: bool) -> list:
        """What a sweeper does for this event: every due offer (or hold) expired, oldest first, then one walk."""
        due = [booking for booking in (self.holds() if holds else self.offers()) if self.due(booking)]
        reason = "hold_expired" if holds else "expired"
        for booking in due:
            self.bookings[booking].status, self.bookings[booking].reason = CANCELLED, reason
            self.log.append((reason, booking))
        return self.promote() if due else []


# --- the tables -------------------------------------------------------------------------------------

TYPES = text("SELECT * FROM ticket_types WHERE event_id = :event ORDER BY position")
EVENT = text("SELECT * FROM events WHERE id = :event")
BOOKINGS = text("""
SELECT id, user_id, seq, status, quantity, item_types, item_quantities, cancel_reason
  FROM bookings WHERE event_id = :event ORDER BY seq
""")


@dataclass(frozen=True)
class Tables:
    """One event's rows, read in one snapshot: the event, its types (by position), its bookings (by seq)
    with their items as dicts."""

    event: object
    types: list
    bookings: list
    items: dict  # booking id -> {code: quantity}

    @property
    def first_code(self) -> str:
        return self.types[0].code


def read_tables(conn: Connection, event) -> Tables:
    types = conn.execute(TYPES, {"event": event}).all()
    rows = conn.execute(BOOKINGS, {"event": event}).all()
    items = {row.id: items_of(row, types[0].code) for row in rows}
    return Tables(conn.execute(EVENT, {"event": event}).one(), types, rows, items)


def items_of(row, first_code: str) -> dict[str, int]:
    """A booking row's items; NULL arrays mean all its tickets are of the first type."""
    if row.item_types is None:
        return {first_code: row.quantity}
    return {code: quantity for code, quantity in zip(row.item_types, row.item_quantities, strict=True) if quantity}


def type_violations(conn: Connection, event) -> list[str]:
    """The invariants per type and for the event, read from the tables in one snapshot; [] if all hold."""
    return tables_violations(read_tables(conn, event))


def tables_violations(t: Tables) -> list[str]:
    ev, found = t.event, []
    active = [row for row in t.bookings if row.status != CANCELLED]
    taking = [row for row in active if row.status in TAKING]
    queue = [row for row in active if row.status == WAITING]
    taken = sum(row.quantity for row in taking)
    if ev.available_tickets + taken != ev.total_tickets or ev.available_tickets < 0:
        found.append(f"available {ev.available_tickets} + taken {taken} != total {ev.total_tickets}")
    if (ev.waiting_count, ev.waiting_tickets) != (len(queue), sum(row.quantity for row in queue)):
        found.append(f"the event counts {ev.waiting_count} entries / {ev.waiting_tickets} tickets waiting")
    if ev.ticket_type_count != len(t.types):
        found.append(f"ticket_type_count {ev.ticket_type_count} but {len(t.types)} type rows")
    found += [
        f"booking {row.id}: quantity {row.quantity} but items {t.items[row.id]}"
        for row in active
        if sum(t.items[row.id].values()) != row.quantity
    ]
    found += per_type_violations(t, taking, queue)
    found += overtaken(t, taking, queue)
    promotable = walk([(row.id, t.items[row.id]) for row in queue], ev.available_tickets, type_room(t, taking))
    if promotable:
        found.append(f"the queue is not stable: the walk would promote {promotable}")
    return found


def per_type_violations(t: Tables, taking: list, queue: list) -> list[str]:
    """Each type's bookings within its total; with several types, its counters equal to its bookings
    (a one-type event's counters are not written: derived from the event row)."""
    found = []
    for kind in t.types:
        taken = sum(t.items[row.id].get(kind.code, 0) for row in taking)
        waiting = sum(t.items[row.id].get(kind.code, 0) for row in queue)
        if taken > kind.total_tickets:
            found.append(f"type {kind.code}: {taken} taken of {kind.total_tickets}")
        if len(t.types) > 1 and (kind.taken_tickets, kind.waiting_tickets) != (taken, waiting):
            found.append(
                f"type {kind.code}: counters taken {kind.taken_tickets} / waiting {kind.waiting_tickets}, "
                f"bookings {taken} / {waiting}"
            )
    return found


def overtaken(t: Tables, taking: list, queue: list) -> list[str]:
    """Nobody is overtaken by a later entry that wants any of the same types: a booking that has tickets
    shares no type with an older waiting entry. (A waiting entry has waited since it joined, and items
    only ever shrink, so a later booking that got its tickets while sharing a type with it now shared one
    then: it got them at booking, or by a walk, past an entry that wanted one of its types.)"""
    return [
        f"booking {row.id} has tickets of {sorted(shared)} past the older waiting entry {older.id}"
        for older in queue
        for row in taking
        if row.seq > older.seq and (shared := t.items[row.id].keys() & t.items[older.id].keys())
    ]


def type_room(t: Tables, taking: list) -> dict[str, int]:
    return {
        kind.code: kind.total_tickets - sum(t.items[row.id].get(kind.code, 0) for row in taking) for kind in t.types
    }
