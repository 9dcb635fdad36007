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

from app.booking.domain import CANCELLED, CONFIRMED, WAITING
from app.database.tables import booking_events, bookings, events


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
    report.events += 1
    report.bookings += len(rows)
    report.ledger_entries += len(entries)
    found = row_problems(event, rows) + ledger_problems(event, rows, entries)
    report.problems += [f"event {event.id}: {problem}" for problem in found]


def row_problems(event, rows) -> list[str]:
    """The contract's invariants, read from the current rows alone."""
    active = [row for row in rows if row.status != CANCELLED]
    confirmed = sum(row.status == CONFIRMED for row in active)
    waiting = len(active) - confirmed
    problems = []
    if event.available_tickets + confirmed != event.total_tickets:
        problems.append(
            f"availableTickets {event.available_tickets} + confirmed {confirmed} != totalTickets {event.total_tickets}"
        )
    if event.available_tickets < 0:
        problems.append(f"availableTickets is negative ({event.available_tickets})")
    if waiting and event.available_tickets:
        problems.append(f"{waiting} waiting while {event.available_tickets} tickets are available")
    if event.waiting_count != waiting:
        problems.append(f"waitingListCount {event.waiting_count} but {waiting} bookings are waiting")
    return problems + _several_active(active) + _queue_jumpers(active)


def _several_active(active) -> list[str]:
    counts = Counter(row.user_id for row in active)
    return [f"user {user!r} holds {n} active bookings" for user, n in counts.items() if n > 1]


def _queue_jumpers(active) -> list[str]:
    """First come, first served: no entry holding a ticket joined after one still waiting."""
    first_waiting = next((row for row in active if row.status == WAITING), None)
    if first_waiting is None:
        return []
    return [
        f"booking {row.id} ({row.user_id!r}) holds a ticket but joined after {first_waiting.id}, still waiting"
        for row in active
        if row.status == CONFIRMED and row.seq > first_waiting.seq
    ]


def ledger_problems(event, rows, entries) -> list[str]:
    """Replay the ledger from empty, checking each step, then compare where it ends with the rows."""
    replay = Replay(event.total_tickets)
    problems = [
        f"ledger #{entry.seq} ({entry.kind} {entry.booking_id}, user {entry.user_id!r}): {problem}"
        for entry in entries
        for problem in replay.apply(entry)
    ]
    if replay.owed_promotion:
        problems.append("the ledger ends with a freed ticket not passed to the oldest waiting entry")
    return problems + replay.differences(event, rows)


class Replay:
    """An event's state rebuilt from its ledger, entry by entry, as the rules allow it to change.

    Where an entry breaks a rule, the replay says so and still follows the ledger, so that one bad
    entry is reported once rather than as a cascade of differences after it.
    """

    def __init__(self, total_tickets: int) -> None:
        self.available = total_tickets
        self.status: dict[UUID, str] = {}
        self.user: dict[UUID, str] = {}
        self.active: dict[str, UUID] = {}  # user -> their active booking
        self.queue: list[UUID] = []  # waiting bookings, oldest first
        self.owed_promotion = False  # a ticket was freed while someone waited

    def apply(self, entry) -> list[str]:
        """Apply one entry; what is wrong with it, if anything."""
        problems = []
        if self.owed_promotion and entry.kind != "promoted":
            problems.append(f"the ticket freed just before went to nobody, though {self.queue[0]} was waiting")
            self.owed_promotion, self.available = False, self.available + 1
        owner = self.user.get(entry.booking_id, entry.user_id)
        if owner != entry.user_id:
            problems.append(f"booking {entry.booking_id} belongs to {owner!r}, not {entry.user_id!r}")
        problem = getattr(self, f"_{entry.kind}")(entry)
        return problems + ([problem] if problem else [])

    def _booked(self, entry) -> str | None:
        problem = None if self.available > 0 else "no ticket was left"
        self.available -= 1
        return self._join(entry, CONFIRMED) or problem

    def _waitlisted(self, entry) -> str | None:
        problem = f"{self.available} tickets were left" if self.available > 0 else None
        self.queue.append(entry.booking_id)
        return self._join(entry, WAITING) or problem

    def _join(self, entry, status: str) -> str | None:
        problem = None
        if entry.booking_id in self.status:
            problem = "the booking was created twice"
        elif entry.user_id in self.active:
            problem = f"the user already held {self.active[entry.user_id]}"
        self.status[entry.booking_id], self.user[entry.booking_id] = status, entry.user_id
        self.active[entry.user_id] = entry.booking_id
        return problem

    def _cancelled(self, entry) -> str | None:
        was = self.status.get(entry.booking_id)
        if was not in (CONFIRMED, WAITING):
            return f"the booking was {was or 'never booked'}"
        self.status[entry.booking_id] = CANCELLED
        self.active.pop(entry.user_id, None)
        if was == WAITING:
            self.queue.remove(entry.booking_id)
        elif self.queue:
            self.owed_promotion = True  # the next entry must promote the oldest waiting one
        else:
            self.available += 1
        return None

    def _promoted(self, entry) -> str | None:
        owed, self.owed_promotion = self.owed_promotion, False
        oldest = self.queue[0] if self.queue else None
        if entry.booking_id in self.queue:
            self.queue.remove(entry.booking_id)
            self.status[entry.booking_id] = CONFIRMED
        if not owed:
            self.available -= 1
            return "no ticket had been freed for it"
        if entry.booking_id != oldest:
            return f"{oldest} had waited longer"
        return None

    def differences(self, event, rows) -> list[str]:
        """Where the replayed state and the current rows disagree."""
        in_table = {row.id: row.status for row in rows}
        problems = [
            f"booking {booking} is {in_table.get(booking, 'missing')} in the table but {status} in the ledger"
            for booking, status in self.status.items()
            if in_table.get(booking) != status
        ]
        problems += [f"booking {b} ({in_table[b]}) has no ledger entry" for b in in_table if b not in self.status]
        if self.available != event.available_tickets:
            problems.append(f"availableTickets is {event.available_tickets}, but the ledger leaves {self.available}")
        if self.queue != [row.id for row in rows if row.status == WAITING]:
            problems.append("the waiting list differs from the one the ledger builds, in members or in order")
        return problems
