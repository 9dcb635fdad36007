"""`flask check`: the contract's invariants for every event, verified twice over.

Once against the current rows (events, bookings), and once against the ledger (booking_events)
replayed from empty, whose end state must then be the current rows exactly. All of it is read in
one REPEATABLE READ snapshot, so a check run while the service serves sees one consistent moment.

With ticket types (issue 26) the rule replayed is the walk of app/booking/ticket_walk.py: each booking and
each ledger entry has items (NULL arrays: all of its quantity is of the event's first type), and each
type's counters, totals and places are checked as the event's are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import Connection, Engine, select

from app.booking.domain import CANCELLED, CONFIRMED, HELD, LOBBY, OFFERED, STANDARD, WAITING
from app.booking.ticket_walk import Entry, gets_tickets_at_once, walk
from app.database.tables import booking_events, bookings, events, lobby_ranks, queue_departures, ticket_types
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
    types = conn.execute(
        select(ticket_types).where(ticket_types.c.event_id == event.id).order_by(ticket_types.c.position)
    ).all()
    ranks = conn.execute(select(lobby_ranks).where(lobby_ranks.c.event_id == event.id)).all()
    report.events += 1
    report.bookings += len(rows)
    report.ledger_entries += len(entries)
    found = (
        row_problems(event, rows, types)
        + type_problems(event, rows, types)
        + place_problems(event, rows, departures)
        + item_place_problems(event, rows, departures, types)
        + ledger_problems(event, rows, entries, types)
        + lobby_problems(event, rows, entries, ranks)
    )
    report.problems += [f"event {event.id}: {problem}" for problem in found]


def items_by_type(booking, first_type: str) -> dict[str, int]:
    """The items of a booking row or of a ledger entry, by type code. NULL arrays (an event of one type, or
    a booking older than its event's second type) mean that all of its quantity is of the first type."""
    codes = getattr(booking, "item_types", None)
    if codes is None:
        return {first_type: booking.quantity}
    return dict(zip(codes, booking.item_quantities, strict=True))


def first_type(types) -> str:
    return types[0].code if types else STANDARD


def tickets_by_type(rows, first: str, statuses: tuple[str, ...]) -> Counter:
    """The tickets of each type in the bookings of `statuses` (held by HOLDING ones, wanted by WAITING)."""
    tickets = Counter()
    for row in rows:
        if row.status in statuses:
            tickets.update(items_by_type(row, first))
    return tickets


def row_problems(event, rows, types) -> list[str]:
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
    if owed := _owed_by_rows(event, active, types):
        problems.append(
            f"{len(queue)} waiting while {event.available_tickets} tickets are available:"
            f" the FIFO rule promotes {owed[0].booking} ({owed[0].quantity})"
        )
    if event.waiting_count != len(queue):
        problems.append(f"waitingListCount {event.waiting_count} but {len(queue)} bookings are waiting")
    if event.waiting_tickets != sum(row.quantity for row in queue):
        problems.append(
            f"waitingTickets {event.waiting_tickets} but the waiting entries want {sum(row.quantity for row in queue)}"
        )
    return problems + _several_active(active) + _queue_jumpers(active, first_type(types))


def _owed_by_rows(event, active, types) -> list[Entry]:
    """Whom the walk over the waiting entries would promote now: nobody, in a stable queue."""
    first = first_type(types)
    taken = tickets_by_type(active, first, HOLDING)
    room = {row.code: row.total_tickets - taken[row.code] for row in types} or {first: event.available_tickets}
    queue = [Entry(row.id, items_by_type(row, first)) for row in active if row.status == WAITING]
    known = [entry for entry in queue if entry.items.keys() <= room.keys()]  # type_problems names the others
    return walk(known, event.available_tickets, room) if len(known) == len(queue) else []


def _several_active(active) -> list[str]:
    counts = Counter(row.user_id for row in active)
    return [f"user {user!r} holds {n} active bookings" for user, n in counts.items() if n > 1]


def _queue_jumpers(active, first: str) -> list[str]:
    """No entry holding tickets (confirmed, offered or held) joined after one still waiting for any of its types."""
    first_waiting = {}  # type -> the oldest waiting entry that wants it
    for row in active:
        if row.status == WAITING:
            for ticket_type in items_by_type(row, first):
                first_waiting.setdefault(ticket_type, row)
    problems = []
    for row in (row for row in active if row.status in HOLDING):
        older = [first_waiting[t] for t in items_by_type(row, first) if t in first_waiting]
        if older and (waiting := min(older, key=lambda w: w.seq)).seq < row.seq:
            problems.append(
                f"booking {row.id} ({row.user_id!r}) holds a ticket but joined after {waiting.id}, still waiting"
            )
    return problems


def type_problems(event, rows, types) -> list[str]:
    """Each ticket type's invariants: its bookings hold at most its total, which is at most the event's;
    with several types, its counters are the sums of its items (with one, they are not kept)."""
    if not types:
        return ["it has no ticket type"]
    taken, waiting = tickets_by_type(rows, types[0].code, HOLDING), tickets_by_type(rows, types[0].code, (WAITING,))
    problems = []
    if event.ticket_type_count != len(types):
        problems.append(f"ticketTypeCount {event.ticket_type_count} but it has {len(types)} types")
    unknown = (taken.keys() | waiting.keys()) - {row.code for row in types}
    problems += [f"bookings hold or want {code!r}, not a type of the event" for code in sorted(unknown)]
    problems += [
        f"booking {row.id}'s items add up to {sum(row.item_quantities)}, not its quantity {row.quantity}"
        for row in rows
        if row.item_types is not None and sum(row.item_quantities) != row.quantity
    ]
    for row in types:
        problems += _one_type_problems(event, row, taken[row.code], waiting[row.code], counted=len(types) > 1)
    return problems


def _one_type_problems(event, row, taken: int, waiting: int, counted: bool) -> list[str]:
    problems = []
    if taken > row.total_tickets:
        problems.append(f"type {row.code}: its bookings hold {taken} tickets, above its total {row.total_tickets}")
    if row.total_tickets > event.total_tickets:
        problems.append(f"type {row.code}: its total {row.total_tickets} is above the event's {event.total_tickets}")
    if counted and row.taken_tickets != taken:
        problems.append(f"type {row.code}: takenTickets {row.taken_tickets} but its holding items hold {taken}")
    if counted and row.waiting_tickets != waiting:
        problems.append(f"type {row.code}: waitingTickets {row.waiting_tickets} but its waiting items want {waiting}")
    return problems


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
    return _first_of(wrong)


def item_place_problems(event, rows, departures, types) -> list[str]:
    """With several types, each waiting item's tickets ahead as its type's counters give them, against the
    tickets of that type that older waiting entries want."""
    if len(types) < 2:
        return []
    trees = {row.code: QueuePlaces(event, departures, row.position) for row in types}
    wrong, ahead = [], Counter()
    for row in (row for row in rows if row.status == WAITING):
        for code, before in zip(row.item_types or (), row.item_tickets_before or (), strict=True):
            counted = trees[code].tickets_ahead(row.queue_ordinal, before) if code in trees else None
            if counted != ahead[code]:
                wrong.append(
                    f"booking {row.id} has {ahead[code]} {code} tickets ahead, but its type's counters say {counted}"
                )
        ahead.update(items_by_type(row, types[0].code))
    return _first_of(wrong)


def _first_of(wrong: list[str]) -> list[str]:
    return wrong[:1] + ([f"{len(wrong) - 1} more waiting entries are misplaced the same way"] if len(wrong) > 1 else [])


class QueuePlaces:
    """The places that the queue's counters give (migration 0008): the arrival rank and the tickets
    queued before, less the entries promoted from the head and those that left from elsewhere (a
    Fenwick tree over ordinals: node n sums the departures of ordinals n - lowbit(n) + 1 .. n).

    Tree 0 is the event's; tree k (migration 0019) counts the tickets of type position k that left, a
    promotion included on an event with several types. Promotions counted on the event row were all made
    from the head before the event had a second type, so only type 1 subtracts them."""

    def __init__(self, event, departures, tree: int = 0) -> None:
        self.event = event
        self.tree = tree
        self.nodes = {
            node.node: (node.entries, node.tickets) for node in departures if getattr(node, "ticket_type", 0) == tree
        }

    def place(self, ordinal: int | None, tickets_before: int | None) -> tuple[int, int] | None:
        """(position, tickets ahead) of the waiting entry that joined at `ordinal`."""
        if ordinal is None or tickets_before is None:
            return None
        entries, tickets = self._left_before(ordinal)
        return (
            ordinal - self.event.queue_promoted_entries - entries,
            tickets_before - self.event.queue_promoted_tickets - tickets,
        )

    def tickets_ahead(self, ordinal: int | None, tickets_before: int | None) -> int | None:
        """The tickets of this tree's type ahead of the item that joined at `ordinal`."""
        if ordinal is None or tickets_before is None:
            return None
        promoted = self.event.queue_promoted_tickets if self.tree == 1 else 0
        return tickets_before - promoted - self._left_before(ordinal)[1]

    def _left_before(self, ordinal: int) -> tuple[int, int]:
        left = [self.nodes.get(node, (0, 0)) for node in prefix_nodes(ordinal - 1)]
        return sum(entries for entries, _ in left), sum(tickets for _, tickets in left)


def prefix_nodes(ordinal: int) -> list[int]:
    """The tree's nodes that sum ordinals 1..`ordinal`: one per set bit, with the bits below cleared."""
    return [(ordinal >> bit) << bit for bit in range(31) if (ordinal >> bit) & 1]


def ledger_problems(event, rows, entries, types) -> list[str]:
    """Replay the ledger from empty, checking each step, then compare where it ends with the rows."""
    initial_total = _initial_total(event, entries)
    replay = Replay(initial_total, _initial_types(types, entries, initial_total))
    problems = [
        f"ledger #{entry.seq} ({entry.kind} {entry.quantity} of {entry.booking_id}, user {entry.user_id!r}): {problem}"
        for entry in entries
        for problem in replay.apply(entry)
    ]
    if replay.owed():
        problems.append("the ledger ends with a freed ticket not passed to the waiting entry the FIFO rule promotes")
    return problems + replay.differences(event, rows) + replay.type_differences(types)


def _initial_total(event, entries) -> int:
    """The capacity the event opened with: before its first capacity change, if it had any."""
    return next(
        (entry.total_tickets_from for entry in entries if entry.kind == "capacity_changed"), event.total_tickets
    )


def _initial_types(types, entries, initial_total: int) -> dict[str, int]:
    """The types the event opened with (those no `type_added` entry adds), in order, with their totals then:
    before their first `type_changed`, if they had any. A lone type is the event, and its total followed
    the event's capacity changes, which the ledger records without a `type_changed`: it opened with the
    event's total."""
    added = {entry.ticket_type for entry in entries if entry.kind == "type_added"}
    totals_then = {}
    for entry in entries:
        if entry.kind == "type_changed":
            totals_then.setdefault(entry.ticket_type, entry.total_tickets_from)
    opened = [row for row in types if row.code not in added]
    if len(opened) == 1 and opened[0].code not in totals_then:
        return {opened[0].code: initial_total}
    return {row.code: totals_then.get(row.code, row.total_tickets) for row in opened}


HOLDING = (CONFIRMED, OFFERED, HELD)  # the statuses whose tickets are taken from the pool


@dataclass(frozen=True)
class Change:
    """One ledger entry's content: what the rule does to a booking (see Replay.book and Replay.cancel)."""

    kind: str
    booking_id: UUID | None
    user_id: str | None
    quantity: int | None
    total_tickets_from: int | None = None  # capacity_changed, type_added and type_changed only
    total_tickets_to: int | None = None
    item_types: tuple[str, ...] | None = None  # the items the change moved; None: all of quantity, first type
    item_quantities: tuple[int, ...] | None = None
    ticket_type: str | None = None  # type_added and type_changed: the type's code


def change(kind: str, booking_id, user_id, items: Mapping[str, int]) -> Change:
    """A booking's ledger entry that moved `items`."""
    return Change(
        kind, booking_id, user_id, sum(items.values()), item_types=tuple(items), item_quantities=tuple(items.values())
    )


def _text(items: Mapping[str, int]) -> str:
    return ";".join(f"{code}:{quantity}" for code, quantity in items.items())


class Replay:
    """An event's state rebuilt from its ledger, entry by entry, as the rules allow it to change; and
    the rules themselves, in plain Python (`book`, `cancel`, `resize`, `retype`: the changes they make,
    as ledger entries).

    First come, first served, all or none, with ticket types (app/booking/ticket_walk.py): a booking gets
    its tickets at once only if the walk would promote it as the newest waiting entry; after every change
    that frees tickets or shrinks the queue, the walk promotes, in order. On an event of one type that is
    strict FIFO. Where an entry breaks a rule, the replay says so and still follows the ledger, so that
    one bad entry is reported once rather than as a cascade of differences after it.
    """

    def __init__(self, total_tickets: int, types: Mapping[str, int] | None = None) -> None:
        self.total = total_tickets
        self.available = total_tickets
        self.type_total: dict[str, int] = dict(types) if types is not None else {STANDARD: total_tickets}
        self.taken: Counter[str] = Counter()  # per type: the tickets confirmed, offered and held bookings take
        self.sales_open = True
        self.cancelled = False  # the event was called off: its own `cancelled` entries follow, then nothing
        self.status: dict[UUID, str] = {}
        self.user: dict[UUID, str] = {}
        self.items: dict[UUID, dict[str, int]] = {}  # tickets held or wanted, per type
        self.quantity: dict[UUID, int] = {}  # the same, in all
        self.active: dict[str, UUID] = {}  # user -> their active booking
        self.queue: list[UUID] = []  # waiting bookings, oldest first
        self.walk_due: list[UUID] | None = []  # whom the walk promotes now, not yet promoted; None: walk again
        self.overlooked: UUID | None = None  # an entry owed a promotion that it did not get, reported once
        # (code, total before) of an event's lone type that followed a capacity change in this change; undone
        # if the change adds a type (then the first type keeps its total, as update_event.sql does)
        self.followed: tuple[str, int] | None = None
        self.change: tuple = (None, None)  # the request id and stamp of the last entry applied

    @property
    def first_type(self) -> str:
        """The type of a booking whose entries carry no items."""
        return next(iter(self.type_total), STANDARD)

    def _wanted(self, wanted: int | Mapping[str, int]) -> dict[str, int]:
        return dict(wanted) if isinstance(wanted, Mapping) else {self.first_type: wanted}

    def book(self, booking_id: UUID, user_id: str, wanted: int | Mapping[str, int]) -> str:
        """What the rule does with a new booking (a quantity of the first type, or items): its status."""
        items = self._wanted(wanted)
        at_once = gets_tickets_at_once(self._waiting(), self.available, self.type_room(), Entry(booking_id, items))
        self.apply(change("booked" if at_once else "waitlisted", booking_id, user_id, items))
        return CONFIRMED if at_once else WAITING

    def cancel(self, booking_id: UUID, given_up: int | Mapping[str, int] | None = None) -> list[UUID]:
        """Give up some of the booking's tickets (all by default); the bookings promoted, in order."""
        held = self.items[booking_id]
        items = held if given_up is None else self._wanted(given_up)
        self.apply(change("cancelled" if items == held else "reduced", booking_id, self.user[booking_id], items))
        return self._promote()

    def resize(self, total_tickets: int) -> list[UUID]:
        """An organiser's new capacity; the bookings a raise promotes, in order."""
        self.apply(Change("capacity_changed", None, None, None, self.total, total_tickets))
        return self._promote()

    def retype(self, code: str, total_tickets: int) -> list[UUID]:
        """An organiser adds a type or changes a type's total; the bookings a raise promotes, in order."""
        kind = "type_changed" if code in self.type_total else "type_added"
        total_from = self.type_total.get(code, 0)
        self.apply(Change(kind, None, None, None, total_from, total_tickets, ticket_type=code))
        return self._promote()

    def _promote(self) -> list[UUID]:
        promoted = list(self.owed())
        for booking in promoted:
            self.apply(change("promoted", booking, self.user[booking], self.items[booking]))
        return promoted

    def position(self, booking_id: UUID) -> int:
        return self.queue.index(booking_id) + 1

    def tickets_ahead(self, booking_id: UUID, ticket_type: str | None = None) -> int:
        """The tickets (of `ticket_type`, if given) wanted by the waiting entries ahead of the booking."""
        ahead = self.queue[: self.queue.index(booking_id)]
        if ticket_type is None:
            return sum(self.quantity[booking] for booking in ahead)
        return sum(self.items[booking].get(ticket_type, 0) for booking in ahead)

    def head_fits(self) -> bool:
        """Whether the walk promotes the oldest waiting entry now (on an event of one type: whether it fits)."""
        return bool(self.queue) and self.owed()[:1] == self.queue[:1]

    @property
    def waiting_tickets(self) -> int:
        return sum(self.quantity[waiting] for waiting in self.queue)

    def type_room(self) -> dict[str, int]:
        """Each type's own room: its total less what its bookings take."""
        return {code: total - self.taken[code] for code, total in self.type_total.items()}

    def _waiting(self) -> list[Entry]:
        return [Entry(booking, self.items[booking]) for booking in self.queue]

    def owed(self) -> list[UUID]:
        """Whom the walk over the waiting entries promotes now, oldest first: nobody, once every change
        that freed tickets has been passed on. Walked again only after such a change."""
        if self.walk_due is None:
            owed = [] if self.cancelled else walk(self._waiting(), self.available, self.type_room())
            self.walk_due = [entry.booking for entry in owed]
        return self.walk_due

    def _unsettle(self) -> None:
        """Tickets were freed, or the queue shrank: the walk may promote someone."""
        self.walk_due = None
        self.overlooked = None

    def apply(self, entry) -> list[str]:
        """Apply one entry; what is wrong with it, if anything."""
        problems = []
        later_in_its_change = self._same_change(entry)
        if not later_in_its_change:
            self.followed = None
        if not self._promotes(entry) and not later_in_its_change:
            owed = self.owed()
            if owed and owed[0] != self.overlooked:
                problems.append(f"the ticket freed just before went to nobody, though {owed[0]} was waiting")
                self.overlooked = owed[0]
        if not self._promotes(entry) and self.walk_due:
            self.walk_due = None  # an overlooked promotion: walk the changed state again
        owner = self.user.get(entry.booking_id, entry.user_id)
        if owner != entry.user_id:
            problems.append(f"booking {entry.booking_id} belongs to {owner!r}, not {entry.user_id!r}")
        if self.cancelled and entry.kind != "cancelled":
            problems.append("the event had been cancelled")
        problem = getattr(self, f"_{entry.kind}")(entry)
        return problems + ([problem] if problem else [])

    def _items(self, entry) -> dict[str, int]:
        return items_by_type(entry, self.first_type)

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

    def _take(self, items: Mapping[str, int]) -> None:
        self.available -= sum(items.values())
        self.taken.update(items)

    def _capacity_changed(self, entry) -> str | None:
        problem = None
        held = self.total - self.available
        if entry.total_tickets_from != self.total:
            problem = f"it changed a capacity of {entry.total_tickets_from}, but the event had {self.total}"
        elif entry.total_tickets_to < held:
            problem = f"the new capacity {entry.total_tickets_to} is below the {held} tickets held"
        elif any(self.quantity[waiting] > entry.total_tickets_to for waiting in self.queue):
            problem = f"the new capacity {entry.total_tickets_to} is below a waiting entry's quantity"
        if len(self.type_total) == 1:  # an event's lone type is the event: its total follows
            self.followed = (self.first_type, self.type_total[self.first_type])
            self.type_total[self.first_type] = entry.total_tickets_to
        self.available += entry.total_tickets_to - self.total
        self.total = entry.total_tickets_to
        self._unsettle()
        return problem

    def _type_added(self, entry) -> str | None:
        code = entry.ticket_type
        problem = f"type {code} was there already" if code in self.type_total else None
        if self.followed is not None:  # no longer the lone type: it keeps the total it had
            self.type_total[self.followed[0]] = self.followed[1]
            self.followed = None
        self.type_total[code] = entry.total_tickets_from  # 0: the change from nothing to its total follows
        return self._type_changed(entry) or problem

    def _type_changed(self, entry) -> str | None:
        code, problem = entry.ticket_type, None
        was = self.followed[1] if self.followed and self.followed[0] == code else self.type_total.get(code)
        if self.followed and self.followed[0] == code:
            self.followed = None  # set explicitly by this change, after the event's capacity
        if code not in self.type_total:
            problem = f"type {code} was never added"
        elif entry.total_tickets_from != was:
            problem = f"it changed {code}'s total of {entry.total_tickets_from}, but the type had {was}"
        elif entry.total_tickets_to < self.taken[code]:
            problem = f"{code}'s new total {entry.total_tickets_to} is below the {self.taken[code]} tickets it holds"
        elif entry.total_tickets_to > self.total:
            problem = f"{code}'s new total {entry.total_tickets_to} is above the event's {self.total}"
        self.type_total[code] = entry.total_tickets_to
        self._unsettle()
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
        return self._join(entry, self._items(entry), LOBBY) or problem

    def _lobby_drawn(self, entry) -> None:
        """The draw done: every entry of the lobby booked (checked in app/operations/lobby_audit.py)."""

    def _event_updated(self, entry) -> None:
        """An organiser's change, as a whole (the event.updated webhook): what the replay follows of it, the
        capacity, the types and the sales, are the entries after it; a name or an offer setting changes no count."""

    def _in_the_way(self, items: Mapping[str, int], booking_id: UUID | None = None) -> UUID | None:
        """The oldest waiting entry (older than `booking_id`, if it waits) that the rule does not let a
        booking of `items` pass: one that wants any of its types, or more than the event has left. With a
        stable queue, a new booking waits iff there is one (the design of book_ticket.sql)."""
        older = self.queue[: self.queue.index(booking_id)] if booking_id in self.queue else self.queue
        return next(
            (w for w in older if self.quantity[w] > self.available or not self.items[w].keys().isdisjoint(items)),
            None,
        )

    def _lacking(self, items: Mapping[str, int]) -> str | None:
        """What the event or one of the types lacks to give `items` now, if anything."""
        quantity, room = sum(items.values()), self.type_room()
        if quantity > self.available:
            return f"only {self.available} tickets were left" if self.available else "no ticket was left"
        short = next((code for code, wanted in items.items() if wanted > room.get(code, 0)), None)
        return None if short is None else f"only {room.get(short, 0)} {short} tickets were left"

    def _booked(self, entry, status: str = CONFIRMED) -> str | None:
        items = self._items(entry)
        problem = None if self.sales_open else "sales were closed"
        blocker = self._in_the_way(items)
        if blocker is not None and blocker != self.overlooked:
            problem = f"{blocker} was waiting"
        else:
            problem = self._lacking(items) or problem
        self._take(items)
        return self._join(entry, items, status) or problem

    def _waitlisted(self, entry) -> str | None:
        items = self._items(entry)
        fits = self._in_the_way(items) is None and self._lacking(items) is None
        problem = f"{self.available} tickets were left" if fits else None if self.sales_open else "sales were closed"
        if fits:
            self.walk_due = None  # the walk owes it the tickets it should have had
        self.queue.append(entry.booking_id)
        return self._join(entry, items, WAITING) or problem

    def _join(self, entry, items: dict[str, int], status: str) -> str | None:
        problem = None
        seating = self.status.get(entry.booking_id) == LOBBY  # the draw books a lobby entry, in place
        if entry.booking_id in self.status and not seating:
            problem = "the booking was created twice"
        elif entry.user_id in self.active and not seating:
            problem = f"the user already held {self.active[entry.user_id]}"
        elif unknown := items.keys() - self.type_total.keys():
            problem = f"the event has no type {sorted(unknown)[0]}"
            self.type_total.update(dict.fromkeys(unknown, 0))
        self.status[entry.booking_id], self.user[entry.booking_id] = status, entry.user_id
        self.items[entry.booking_id], self.quantity[entry.booking_id] = items, sum(items.values())
        self.active[entry.user_id] = entry.booking_id
        return problem

    def _cancelled(self, entry) -> str | None:
        was = self.status.get(entry.booking_id)
        if was not in HOLDING + (WAITING, LOBBY):
            return f"the booking was {was or 'never booked'}"
        held, given = self.items[entry.booking_id], self._items(entry)
        self._release(given, was)
        self.status[entry.booking_id] = CANCELLED
        self.active.pop(entry.user_id, None)
        if was == WAITING:
            self.queue.remove(entry.booking_id)
        if entry.quantity != self.quantity[entry.booking_id]:
            return f"it gave up {entry.quantity} of the {self.quantity[entry.booking_id]} tickets it held"
        return None if given == held else f"it gave up {_text(given)} but held {_text(held)}"

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
        return None if self._items(entry) == self.items[entry.booking_id] else "it accepted other tickets"

    def _held(self, entry) -> str | None:
        """Tickets held for a payment (issue 25): at a booking (like `booked`), for a waiting entry the walk
        promotes (like `promoted`), or for an offer accepted (like `accepted`)."""
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
        return None if self._items(entry) == self.items[entry.booking_id] else "it was paid for other tickets"

    def _reduced(self, entry) -> str | None:
        was = self.status.get(entry.booking_id)
        if was not in HOLDING + (WAITING, LOBBY):
            return f"the booking was {was or 'never booked'}"
        held, given = self.items[entry.booking_id], self._items(entry)
        self._release(given, was)
        left = {code: held.get(code, 0) - given.get(code, 0) for code in held.keys() | given.keys()}
        self.items[entry.booking_id] = {code: left[code] for code in held if left[code] > 0}
        self.quantity[entry.booking_id] = sum(self.items[entry.booking_id].values())
        if entry.quantity >= sum(held.values()):
            return f"a partial cancel of {entry.quantity} when it held {sum(held.values())}"
        short = next((code for code, quantity in left.items() if quantity < 0), None)
        return (
            None if short is None else f"a partial cancel of {given[short]} {short} when it held {held.get(short, 0)}"
        )

    def _release(self, items: Mapping[str, int], was: str) -> None:
        """A confirmed, offered or held booking's tickets go back to the pool; a waiting entry's were never
        taken, but the queue shrinks: either may let the walk promote someone."""
        if was in HOLDING:
            self.available += sum(items.values())
            self.taken.subtract(items)
        self._unsettle()

    def _offered(self, entry) -> str | None:
        """A waiting entry the walk promotes, offered the freed tickets (offer mode): held for it, as a promotion's are."""
        return self._promoted(entry, OFFERED)

    def _promoted(self, entry, status: str = CONFIRMED) -> str | None:
        owed, items = self.owed(), self._items(entry)
        problem = self._promotion_problem(entry.booking_id, items, owed)
        if entry.booking_id in owed:
            owed.remove(entry.booking_id)
        else:
            self.walk_due = None  # not the rule's promotion: walk the changed state again
        if entry.booking_id in self.queue:
            self.queue.remove(entry.booking_id)
            self.status[entry.booking_id] = status
        self._take(items)
        return problem

    def _promotion_problem(self, booking_id: UUID, items: dict[str, int], owed: list[UUID]) -> str | None:
        if owed and owed[0] != booking_id:
            return (
                f"{owed[0]} had waited longer"
                if self._older(owed[0], booking_id)
                else f"the rule promotes {owed[0]} first"
            )
        if not owed:
            blocker = self._in_the_way(self.items.get(booking_id, items), booking_id)
            return f"{blocker} had waited longer" if blocker else "no ticket had been freed for it"
        wanted = self.items[booking_id]
        if sum(items.values()) != sum(wanted.values()):
            return f"it was promoted with {sum(items.values())} tickets but wanted {sum(wanted.values())}"
        return None if items == wanted else f"it was promoted with {_text(items)} but wanted {_text(wanted)}"

    def _older(self, booking_id: UUID, than: UUID) -> bool:
        return than not in self.queue or self.queue.index(booking_id) < self.queue.index(than)

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
            self._items_difference(booking, items, items_by_type(in_table[booking], self.first_type))
            for booking, items in self.items.items()
            if booking in in_table and items_by_type(in_table[booking], self.first_type) != items
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

    @staticmethod
    def _items_difference(booking_id: UUID, replayed: dict[str, int], in_table: dict[str, int]) -> str:
        if sum(replayed.values()) != sum(in_table.values()):
            return (
                f"booking {booking_id} holds {sum(in_table.values())} tickets in the table"
                f" but {sum(replayed.values())} in the ledger"
            )
        return f"booking {booking_id} holds {_text(in_table)} in the table but {_text(replayed)} in the ledger"

    def type_differences(self, types) -> list[str]:
        """The ticket types and their totals that the ledger records, against the ticket_types rows."""
        in_table = {row.code: row.total_tickets for row in types}
        problems = [
            f"type {code} has totalTickets {in_table.get(code)}, but the ledger leaves {total}"
            for code, total in self.type_total.items()
            if in_table.get(code) != total
        ]
        return problems + [f"type {code} is not in the ledger" for code in in_table if code not in self.type_total]
