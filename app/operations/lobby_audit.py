"""`flask check` for the fair sale opening (issue 27): what an event's draw must have done, read from its
lobby_ranks, its bookings and its ledger (app/operations/audit.py calls it for every event).

- each entry drawn once: a booking has at most one rank, and is booked by the draw at most once;
- the ranks a permutation: 1..n, each given once, n the event's lobby_ranked;
- booked in rank order: the draw's entries (those carrying a lobbyRank) in the ledger in increasing rank,
  each with the rank the booking was given, which its row shows too;
- late arrivals after every drawn entry, in arrival order: an entry that joined at or after salesOpenAt is
  ranked after those drawn at random (the event's draw_entries), and the later it joined, the later its rank;
- none forgotten: once the draw is done, nobody is left in the lobby, and every rank was booked or left the
  lobby before its turn; the lobbyCount is the entries in the lobby.
"""

from __future__ import annotations

from collections import Counter

from app.booking.domain import LOBBY


def lobby_problems(event, rows, entries, ranks) -> list[str]:
    """What is wrong with the event's lobby and draw; `ranks` are its lobby_ranks rows."""
    rank_of = {rank.booking_id: rank.rank for rank in ranks}
    problems = _rank_problems(event, ranks, rank_of)
    problems += _seating_problems(entries, rows, rank_of)
    problems += _arrival_problems(event, entries, rank_of)
    return problems + _left_problems(event, rows, entries, rank_of)


def _rank_problems(event, ranks, rank_of) -> list[str]:
    problems = []
    if sorted(rank.rank for rank in ranks) != list(range(1, len(ranks) + 1)) or len(ranks) != event.lobby_ranked:
        problems.append(f"the draw's {len(ranks)} ranks are not 1..{event.lobby_ranked}, each once")
    if len(rank_of) != len(ranks):
        problems.append("a lobby entry was ranked more than once")
    return problems


def _seating_problems(entries, rows, rank_of) -> list[str]:
    """The draw's bookings: each once, with its rank, in rank order; the rows show the same ranks."""
    seated = [entry for entry in entries if entry.lobby_rank is not None]
    problems = [
        f"booking {booking} was booked by the draw {n} times"
        for booking, n in Counter(e.booking_id for e in seated).items()
        if n > 1
    ]
    problems += [
        f"ledger #{entry.seq} books {entry.booking_id} at rank {entry.lobby_rank}, but it was ranked {rank_of.get(entry.booking_id)}"
        for entry in seated
        if rank_of.get(entry.booking_id) != entry.lobby_rank
    ]
    order = [entry.lobby_rank for entry in seated]
    if order != sorted(order):
        problems.append("the draw did not book its entries in rank order")
    return problems + [
        f"booking {row.id} shows lobbyRank {row.lobby_rank}, but it was ranked {rank_of.get(row.id)}"
        for row in rows
        if row.lobby_rank is not None and rank_of.get(row.id) != row.lobby_rank
    ]


def _arrival_problems(event, entries, rank_of) -> list[str]:
    """Early entries drawn at random, ranked first; late ones after them, in the order they joined."""
    joined = [entry for entry in entries if entry.kind == "lobby" and entry.booking_id in rank_of]
    late = [entry for entry in joined if entry.created_at >= event.sales_open_at]
    drawn_at_random = event.draw_entries or 0
    problems = [
        f"{entry.booking_id} joined the lobby {'after' if entry in late else 'before'} the opening but was ranked "
        f"{rank_of[entry.booking_id]} of {drawn_at_random} drawn at random"
        for entry in joined
        if (rank_of[entry.booking_id] > drawn_at_random) != (entry in late)
    ]
    late_ranks = [rank_of[entry.booking_id] for entry in late]
    if late_ranks != sorted(late_ranks):
        problems.append("the late arrivals were not ranked in the order they joined the lobby")
    return problems


def _left_problems(event, rows, entries, rank_of) -> list[str]:
    """Nobody forgotten: after the draw, every rank was booked or had left the lobby before its turn."""
    in_lobby = [row for row in rows if row.status == LOBBY]
    problems = []
    if event.lobby_count != len(in_lobby):
        problems.append(f"lobbyCount {event.lobby_count} but {len(in_lobby)} bookings are in the lobby")
    if event.drawn_at is None:
        return problems
    problems += [f"booking {row.id} is still in the lobby after the draw" for row in in_lobby]
    seated = {entry.booking_id for entry in entries if entry.lobby_rank is not None}
    left = {entry.booking_id for entry in entries if entry.kind == "cancelled" and entry.booking_id not in seated}
    return problems + [
        f"booking {booking} was ranked {rank} but never booked by the draw"
        for booking, rank in rank_of.items()
        if booking not in seated and booking not in left
    ]
