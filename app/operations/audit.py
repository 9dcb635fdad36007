"""`flask check`: the contract's invariants for every event, verified twice over.

Once against the current rows (events, bookings), and once against the ledger (booking_events)
replayed from empty, whose end state must then be the current rows exactly. All of it is read in
one REPEATABLE READ snapshot, so a check run while the service serves sees one consistent moment.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import Connection, Engine, select

from app.booking.domain import CANCELLED, CONFIRMED, HELD, LOBBY, OFFERED, WAITING
from app.database.tables import booking_events, bookings, events, lobby_ranks, queue_departures
from app.operations.lobby_audit import lobby_problems


@dataclass
class Report:
    """What a check read and every mismatch it found, one readable line each."""

    events: int = 0
    bookings: int = 0
    ledger_entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        counts = f"{self.events} events, {self.bookings} bookings, {self.ledger_entries} ledger entries"
        if self.ok:
            return f"check passed: {counts}; every invariant holds and the ledger replays to the current rows"
        return f"check FAILED: {len(self.problems)} problem(s) in {counts}"


def check(engine: Engine) -> Report:
    """Check every event; the report lists each mismatch between rows, ledger and the contract."""
    report = Report()
    with engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True) as conn:
        for event in conn.execute(select(events).order_by(events.c.created_at, events.c.id)).all():
            check_event(conn, event, report)
    return report


def check_event(conn: Connection, event, report: Report) -> None:
    """Add to `report` what is wrong with one event, in its rows and in its ledger."""
    rows = conn.execute(select(bookings).where(bookings.c.event_id == event.id).order_by(bookings.c.seq)).all()
    entries = conn.execute(
        select(booking_events).where(booking_events.c.event_id == event.id).order_by(booking_events.c.seq)
    ).all()
    departures = conn.execute(select(queue_departures).where(queue_departures.c.event_id == event.id)).all()
    ranks = conn.execute(select(lobby_ranks).where(lobby_ranks.c.event_id == event.id)).all()
    report.events += 1
    report.bookings += len(rows)
    report.ledger_entries += len(entries)
    found = row_problems(event, rows) + place_problems(event, rows, departures) + ledger_problems(event, rows, entries)
    found += lobby_problems(event, rows, entries, ranks)
    report.problems += [f"event {event.id}: {problem}" for problem in found]


def row_problems(event, rows) -> list[str]:
    """The contract's invariants, read from the current rows alone."""
    active = [row for row in rows if row.status != CANCELLED]
    confirmed = sum(row.quantity for row in active if row.status == CONFIRMED)
    offered = sum(row.quantity for row in active if row.status == OFFERED)  # taken for the offer
    held = sum(row.quantity for row in active if row.status == HELD)  # taken for the payment
    queue = [row for row in active if row.status == WAITING]
    problems = []
    if event.available_tickets + confirmed + offered + held != event.total_tickets:
        problems.append(
            f"availableTickets {event.available_tickets} + confirmed {confirmed} + offered {offered}"
            f" + held {held} != totalTickets {event.total_tickets}"
        )
    if event.held_tickets != held:
        problems.append(f"heldTickets {event.held_tickets} but the held bookings hold {held}")
    if event.available_tickets < 0:
        problems.append(f"availableTickets is negative ({event.available_tickets})")
    if queue and queue[0].quantity <= event.available_tickets:
        problems.append(
            f"{len(queue)} waiting while {event.available_tickets} tickets are available,"
            f" enough for the oldest waiting entry's {queue[0].quantity}"
        )
    if event.waiting_count != len(queue):
        problems.append(f"waitingListCount {event.waiting_count} but {len(queue)} bookings are waiting")
    if event.waiting_tickets != sum(row.quantity for row in queue):
        problems.append(
            f"waitingTickets {event.waiting_tickets} but the waiting entries want {sum(row.quantity for row in queue)}"
        )
    return problems + _several_active(active) + _queue_jumpers(active)


def _several_active(active) -> list[str]:
    counts = Counter(row.user_id for row in active)
    return [f"user {user!r} holds {n} active bookings" for user, n in counts.items() if n > 1]


def _queue_jumpers(active) -> list[str]:
    """First come, first served: no entry holding tickets (confirmed, offered or held) joined after one still waiting."""
    first_waiting = next((row for row in active if row.status == WAITING), None)
    if first_waiting is None:
        return []
    return [
        f"booking {row.id} ({row.user_id!r}) holds a ticket but joined after {first_waiting.id}, still waiting"
        for row in active
        if row.status in HOLDING and row.seq > first_waiting.seq
    ]


def place_problems(event, rows, departures) -> list[str]:
    """Each waiting entry's place as the queue's counters give it (waiting_place.sql, recomputed here)
    against its rank in the queue; only the first that differs is named, and how many do."""
    places = QueuePlaces(event, departures)
    wrong, ahead = [], 0
    for rank, row in enumerate((row for row in rows if row.status == WAITING), start=1):
        counted = places.place(row.queue_ordinal, row.queue_tickets_before)
        if counted != (rank, ahead):
            wrong.append(
                f"booking {row.id} is at {rank} with {ahead} tickets ahead, but the queue's counters say {counted}"
            )
        ahead += row.quantity
    return wrong[:1] + ([f"{len(wrong) - 1} more waiting entries are misplaced the same way"] if len(wrong) > 1 else [])


class QueuePlaces:
    """The places that the queue's counters give (migration 0008): the arrival rank and the tickets
    queued before, less the entries promoted from the head and those that left from elsewhere (a
    Fenwick tree over ordinals: node n sums the departures of ordinals n - lowbit(n) + 1 .. n)."""

    def __init__(self, event, departures) -> None:
        self.event = event
        self.nodes = {node.node: (node.entries, node.tickets) for node in departures}

    def place(self, ordinal: int | None, tickets_before: int | None) -> tuple[int, int] | None:
        """(position, tickets ahead) of the waiting entry that joined at `ordinal`."""
        if ordinal is None or tickets_before is None:
            return None
        left = [self.nodes.get(node, (0, 0)) for node in prefix_nodes(ordinal - 1)]
        return (
            ordinal - self.event.queue_promoted_entries - sum(entries for entries, _ in left),
            tickets_before - self.event.queue_promoted_tickets - sum(tickets for _, tickets in left),
        )


def prefix_nodes(ordinal: int) -> list[int]:
    """The tree's nodes that sum ordinals 1..`ordinal`: one per set bit, with the bits below cleared."""
    return [(ordinal >> bit) << bit for bit in range(31) if (ordinal >> bit) & 1]


def ledger_problems(event, rows, entries) -> list[str]:
    """Replay the ledger from empty, checking each step, then compare where it ends with the rows."""
    replay = Replay(_initial_total(event, entries))
    problems = [
        f"ledger #{entry.seq} ({entry.kind} {entry.quantity} of {entry.booking_id}, user {entry.user_id!r}): {problem}"
        for entry in entries
        for problem in replay.apply(entry)
    ]
    if replay.head_fits():
        problems.append("the ledger ends with a freed ticket not passed to the oldest waiting entry")
    return problems + replay.differences(event, rows)


def _initial_total(event, entries) -> int:
    """The capacity the event opened with: before its first capacity change, if it had any."""
    return next(
        (entry.total_tickets_from for entry in entries if entry.kind == "capacity_changed"), event.total_tickets
    )


HOLDING = (CONFIRMED, OFFERED, HELD)  # the statuses whose tickets are taken from the pool


@dataclass(frozen=True)
class Change:
    """One ledger entry's content: what the rule does to a booking (see Replay.book and Replay.cancel)."""

    kind: str
    booking_id: UUID | None
    user_id: str | None
    quantity: int | None
    total_tickets_from: int | None = None  # capacity_changed only
    total_tickets_to: int | None = None


class Replay:
    """An event's state rebuilt from its ledger, entry by entry, as the rules allow it to change; and
    the rules themselves, in plain Python (`book`, `cancel`: the changes they make, as ledger entries).

    Strict first-come-first-served: a booking is confirmed, all its tickets at once, only if nobody
    waits and they are all available; after every release the oldest waiting entry is confirmed while
    it fits, and the first that does not fit stops it. Where an entry breaks a rule, the replay says so
    and still follows the ledger, so that one bad entry is reported once rather than as a cascade of
    differences after it.
    """

    def __init__(self, total_tickets: int) -> None:
        self.total = total_tickets
        self.available = total_tickets
        self.sales_open = True
        self.cancelled = False  # the event was called off: its own `cancelled` entries follow, then nothing
        self.status: dict[UUID, str] = {}
        self.user: dict[UUID, str] = {}
        self.quantity: dict[UUID, int] = {}  # tickets held or wanted
        self.active: dict[str, UUID] = {}  # user -> their active booking
        self.queue: list[UUID] = []  # waiting bookings, oldest first
        self.overlooked: UUID | None = None  # a head that fitted but was not promoted, reported once
        self.change: tuple = (None, None)  # the request id and stamp of the last entry applied

    def book(self, booking_id: UUID, user_id: str, quantity: int) -> str:
        """What the rule does with a new booking: its status."""
        kind = "waitlisted" if self.queue or quantity > self.available else "booked"
        self.apply(Change(kind, booking_id, user_id, quantity))
        return WAITING if kind == "waitlisted" else CONFIRMED

    def cancel(self, booking_id: UUID, quantity: int | None = None) -> list[UUID]:
        """Give up `quantity` of the booking's tickets (all by default); the bookings promoted, oldest first."""
        held = self.quantity[booking_id]
        kind = "cancelled" if quantity in (None, held) else "reduced"
        self.apply(Change(kind, booking_id, self.user[booking_id], quantity or held))
        return self._promote()

    def _promote(self) -> list[UUID]:
        promoted = []
        while self.head_fits():
            promoted.append(self.queue[0])
            self.apply(Change("promoted", self.queue[0], self.user[self.queue[0]], self.quantity[self.queue[0]]))
        return promoted

    def resize(self, total_tickets: int) -> list[UUID]:
        """An organiser's new capacity; the bookings a raise promotes, oldest first."""
        self.apply(Change("capacity_changed", None, None, None, self.total, total_tickets))
        return self._promote()

    def position(self, booking_id: UUID) -> int:
        return self.queue.index(booking_id) + 1

    def tickets_ahead(self, booking_id: UUID) -> int:
        return sum(self.quantity[ahead] for ahead in self.queue[: self.queue.index(booking_id)])

    @property
    def waiting_tickets(self) -> int:
        return sum(self.quantity[waiting] for waiting in self.queue)

    def head_fits(self) -> bool:
        """Whether the oldest waiting entry fits in the available tickets: the rule owes it a promotion."""
        return not self.cancelled and bool(self.queue) and self.quantity[self.queue[0]] <= self.available

    def apply(self, entry) -> list[str]:
        """Apply one entry; what is wrong with it, if anything."""
        problems = []
        later_in_its_change = self._same_change(entry)
        if (
            self.head_fits()
            and not self._promotes(entry)
            and not later_in_its_change
            and self.queue[0] != self.overlooked
        ):
            problems.append(f"the ticket freed just before went to nobody, though {self.queue[0]} was waiting")
            self.overlooked = self.queue[0]
        owner = self.user.get(entry.booking_id, entry.user_id)
        if owner != entry.user_id:
            problems.append(f"booking {entry.booking_id} belongs to {owner!r}, not {entry.user_id!r}")
        if self.cancelled and entry.kind != "cancelled":
            problems.append("the event had been cancelled")
        problem = getattr(self, f"_{entry.kind}")(entry)
        return problems + ([problem] if problem else [])

    def _promotes(self, entry) -> bool:
        """Whether the entry gives freed tickets to the queue: a promotion, an offer, or a hold made for a waiting entry."""
        return entry.kind in ("promoted", "offered") or (entry.kind == "held" and entry.booking_id in self.queue)

    def _same_change(self, entry) -> bool:
        """Whether the entry belongs to the change of the one before (same request id, same stamp): the
        invariants hold at each commit, so a change may free tickets in several entries (a sweep that
        expires two offers) before its promotions. Entries without a stamp are each a change of their own."""
        change = (getattr(entry, "request_id", None), getattr(entry, "created_at", None))
        same, self.change = change[1] is not None and change == self.change, change
        return same

    def _capacity_changed(self, entry) -> str | None:
        problem = None
        held = self.total - self.available
        if entry.total_tickets_from != self.total:
            problem = f"it changed a capacity of {entry.total_tickets_from}, but the event had {self.total}"
        elif entry.total_tickets_to < held:
            problem = f"the new capacity {entry.total_tickets_to} is below the {held} tickets held"
        elif any(self.quantity[waiting] > entry.total_tickets_to for waiting in self.queue):
            problem = f"the new capacity {entry.total_tickets_to} is below a waiting entry's quantity"
        self.available += entry.total_tickets_to - self.total
        self.total = entry.total_tickets_to
        self.overlooked = None
        return problem

    def _sales_closed(self, entry) -> str | None:
        was_open, self.sales_open = self.sales_open, False
        return None if was_open else "sales were closed already"

    def _sales_opened(self, entry) -> str | None:
        was_open, self.sales_open = self.sales_open, True
        return "sales were open already" if was_open else None

    def _event_cancelled(self, entry) -> None:
        self.cancelled = True

    def _lobby(self, entry) -> str | None:
        """A booking joins the lobby of a sale that opens with a draw (issue 27): no ticket, no place; the
        draw books it later (its booked, held or waitlisted entry, app/operations/lobby_audit.py)."""
        problem = None if self.sales_open else "sales were closed"
        return self._join(entry, LOBBY) or problem

    def _lobby_drawn(self, entry) -> None:
        """The draw done: every entry of the lobby booked (checked in app/operations/lobby_audit.py)."""

    def _event_updated(self, entry) -> None:
        """An organiser's change, as a whole (the event.updated webhook): what the replay follows of it, the
        capacity and the sales, are the entries after it; a name or an offer setting changes no count."""

    def _booked(self, entry, status: str = CONFIRMED) -> str | None:
        problem = None if self.sales_open else "sales were closed"
        if self.queue and self.queue[0] != self.overlooked:
            problem = f"{self.queue[0]} was waiting"
        elif entry.quantity > self.available:
            problem = f"only {self.available} tickets were left" if self.available else "no ticket was left"
        self.available -= entry.quantity
        return self._join(entry, status) or problem

    def _waitlisted(self, entry) -> str | None:
        fits = not self.queue and entry.quantity <= self.available
        problem = f"{self.available} tickets were left" if fits else None if self.sales_open else "sales were closed"
        self.queue.append(entry.booking_id)
        return self._join(entry, WAITING) or problem

    def _join(self, entry, status: str) -> str | None:
        problem = None
        seating = self.status.get(entry.booking_id) == LOBBY  # the draw books a lobby entry, in place
        if entry.booking_id in self.status and not seating:
            problem = "the booking was created twice"
        elif entry.user_id in self.active and not seating:
            problem = f"the user already held {self.active[entry.user_id]}"
        self.status[entry.booking_id], self.user[entry.booking_id] = status, entry.user_id
        self.quantity[entry.booking_id] = entry.quantity
        self.active[entry.user_id] = entry.booking_id
        return problem

    def _cancelled(self, entry) -> str | None:
        was = self.status.get(entry.booking_id)
        if was not in HOLDING + (WAITING, LOBBY):
            return f"the booking was {was or 'never booked'}"
        problem = self._release(entry, was)
        self.status[entry.booking_id] = CANCELLED
        self.active.pop(entry.user_id, None)
        if was == WAITING:
            self.queue.remove(entry.booking_id)
        if entry.quantity != self.quantity[entry.booking_id]:
            problem = f"it gave up {entry.quantity} of the {self.quantity[entry.booking_id]} tickets it held"
        return problem

    def _declined(self, entry) -> str | None:
        """An offer given up (or cancelled after its time ran out, or swept: `expired`): like a cancel."""
        if self.status.get(entry.booking_id) != OFFERED:
            return f"the booking was {self.status.get(entry.booking_id) or 'never booked'}, not offered"
        return self._cancelled(entry)

    _expired = _declined

    def _hold_expired(self, entry) -> str | None:
        """A hold whose time ran out (swept, or cancelled after it): like a cancel."""
        if self.status.get(entry.booking_id) != HELD:
            return f"the booking was {self.status.get(entry.booking_id) or 'never booked'}, not held"
        return self._cancelled(entry)

    def _accepted(self, entry, status: str = CONFIRMED) -> str | None:
        was = self.status.get(entry.booking_id)
        if was != OFFERED:
            return f"the booking was {was or 'never booked'}, not offered"
        self.status[entry.booking_id] = status
        return None if entry.quantity == self.quantity[entry.booking_id] else "it accepted another quantity"

    def _held(self, entry) -> str | None:
        """Tickets held for a payment (issue 25): at a booking (like `booked`), for the head of the queue
        (like `promoted`), or for an offer accepted (like `accepted`)."""
        if entry.booking_id in self.queue:
            return self._promoted(entry, HELD)
        if self.status.get(entry.booking_id) == OFFERED:
            return self._accepted(entry, HELD)
        return self._booked(entry, HELD)

    def _paid(self, entry) -> str | None:
        was = self.status.get(entry.booking_id)
        if was != HELD:
            return f"the booking was {was or 'never booked'}, not held"
        self.status[entry.booking_id] = CONFIRMED
        return None if entry.quantity == self.quantity[entry.booking_id] else "it was paid for another quantity"

    def _reduced(self, entry) -> str | None:
        was = self.status.get(entry.booking_id)
        if was not in HOLDING + (WAITING, LOBBY):
            return f"the booking was {was or 'never booked'}"
        held = self.quantity[entry.booking_id]
        self._release(entry, was)
        self.quantity[entry.booking_id] = held - entry.quantity
        return None if entry.quantity < held else f"a partial cancel of {entry.quantity} when it held {held}"

    def _release(self, entry, was: str) -> None:
        """A confirmed or offered booking's tickets go back to the pool; a waiting entry's were never taken."""
        if was in HOLDING:
            self.available += entry.quantity
        self.overlooked = None

    def _offered(self, entry) -> str | None:
        """The head of the queue offered the freed tickets (offer mode): held for it, as a promotion's are."""
        return self._promoted(entry, OFFERED)

    def _promoted(self, entry, status: str = CONFIRMED) -> str | None:
        fitted = self.head_fits()
        oldest = self.queue[0] if self.queue else None
        if entry.booking_id in self.queue:
            self.queue.remove(entry.booking_id)
            self.status[entry.booking_id] = status
        self.available -= entry.quantity
        if oldest is not None and entry.booking_id != oldest:
            return f"{oldest} had waited longer"
        if not fitted:
            return "no ticket had been freed for it"
        if entry.quantity != self.quantity[entry.booking_id]:
            return f"it was promoted with {entry.quantity} tickets but wanted {self.quantity[entry.booking_id]}"
        return None

    def differences(self, event, rows) -> list[str]:
        """Where the replayed state and the current rows disagree."""
        in_table = {row.id: row for row in rows}
        problems = [
            f"booking {booking} is {getattr(in_table.get(booking), 'status', 'missing')} in the table but {status}"
            " in the ledger"
            for booking, status in self.status.items()
            if getattr(in_table.get(booking), "status", None) != status
        ]
        problems += [
            f"booking {booking} holds {in_table[booking].quantity} tickets in the table but {quantity} in the ledger"
            for booking, quantity in self.quantity.items()
            if booking in in_table and in_table[booking].quantity != quantity
        ]
        problems += [
            f"booking {b} ({row.status}) has no ledger entry" for b, row in in_table.items() if b not in self.status
        ]
        if self.available != event.available_tickets:
            problems.append(f"availableTickets is {event.available_tickets}, but the ledger leaves {self.available}")
        problems += self._event_differences(event)
        if self.queue != [row.id for row in rows if row.status == WAITING]:
            problems.append("the waiting list differs from the one the ledger builds, in members or in order")
        return problems

    def _event_differences(self, event) -> list[str]:
        """The organiser's settings that the ledger records, against the event row."""
        problems = []
        if self.total != event.total_tickets:
            problems.append(f"totalTickets is {event.total_tickets}, but the ledger leaves {self.total}")
        if self.sales_open != event.sales_open:
            problems.append(f"salesOpen is {event.sales_open}, but the ledger leaves {self.sales_open}")
        if self.cancelled != (event.status == "cancelled"):
            problems.append(
                f"the event is {event.status}, but the ledger {'does' if self.cancelled else 'does not'} cancel it"
            )
        if self.cancelled and self.active:
            problems.append(f"{len(self.active)} bookings are still active after the event was cancelled")
        return problems
