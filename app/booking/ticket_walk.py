"""The FIFO rule with ticket types, in plain Python: who a release promotes, and whether a new booking
gets its tickets at once.

This is the rule as the contract states it, with no counters and no database: `flask check` replays
the ledger with it, and the tests compare the SQL (promote_waiting.sql, book_ticket.sql) against it.
The database reaches the same outcome faster (it stops the walk early once every type with waiting
tickets is blocked, and answers a new booking from counters); this module is what "the same outcome"
means.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """A waiting entry: its booking and the tickets it wants, per type code. All or none."""

    booking: Hashable
    items: Mapping[str, int]

    @property
    def quantity(self) -> int:
        return sum(self.items.values())


def walk(queue: Sequence[Entry], room: int, type_room: Mapping[str, int]) -> list[Entry]:
    """The entries a walk over `queue` (oldest first) promotes, in order.

    `room` is what the event as a whole has free, `type_room` what each type has free (its total less
    what its bookings hold). For each entry in turn: if the event lacks room for its total, the walk
    stops; if it wants a type already blocked, it is passed over and blocks each type it wants; if a
    type lacks room for its item, it blocks each type it wants; else it is promoted.
    """
    type_room = dict(type_room)
    blocked: set[str] = set()
    promoted = []
    for entry in queue:
        if entry.quantity > room:
            break
        if blocked.issuperset(type_room):
            break  # every type is blocked: nobody after can be promoted (and a long queue costs nothing more)
        if blocked.isdisjoint(entry.items) and all(wanted <= type_room[t] for t, wanted in entry.items.items()):
            promoted.append(entry)
            room -= entry.quantity
            for ticket_type, wanted in entry.items.items():
                type_room[ticket_type] -= wanted
        else:
            blocked.update(entry.items)
    return promoted


def gets_tickets_at_once(queue: Sequence[Entry], room: int, type_room: Mapping[str, int], new: Entry) -> bool:
    """Whether a new booking is confirmed (or held) at once rather than waiting: it is the newest entry of
    the walk, and gets its tickets only if the walk would promote it."""
    promoted = walk([*queue, new], room, type_room)
    return bool(promoted) and promoted[-1] is new


def is_stable(queue: Sequence[Entry], room: int, type_room: Mapping[str, int]) -> bool:
    """Whether the queue owes nobody a promotion: what every path that frees tickets leaves behind."""
    return not walk(queue, room, type_room)
