"""The FIFO rule with ticket types on hand-made queues, and its properties on generated ones."""

from hypothesis import given, settings
from hypothesis import strategies as st

from app.booking.ticket_walk import Entry, gets_tickets_at_once, is_stable, walk


def entry(booking: str, **items: int) -> Entry:
    return Entry(booking, items)


def promoted(queue: list[Entry], room: int, **type_room: int) -> list[str]:
    return [e.booking for e in walk(queue, room, type_room)]


def test_an_entry_wanting_only_other_types_goes_ahead_of_one_stuck_on_its_type():
    queue = [entry("family", adult=2, child=2), entry("pair", vip=2)]

    assert promoted(queue, 10, adult=1, child=5, vip=2) == ["pair"]


def test_the_event_cap_stops_the_walk_whatever_the_later_entries_want():
    queue = [entry("four", adult=4), entry("one", child=1)]

    assert promoted(queue, 3, adult=0, child=5) == []


def test_the_event_cap_stops_even_an_entry_whose_types_are_blocked():
    queue = [entry("a", adult=2), entry("b", adult=3), entry("c", child=1)]

    assert promoted(queue, 2, adult=1, child=5) == []


def test_a_later_entry_wanting_any_of_the_same_types_never_overtakes():
    queue = [entry("family", adult=2, child=2), entry("parent", adult=1), entry("kid", child=1)]

    assert promoted(queue, 10, adult=5, child=1) == []


def test_a_type_with_no_room_blocks_every_later_entry_wanting_it():
    queue = [entry("a", adult=1), entry("b", adult=1, child=1), entry("c", child=1), entry("d", vip=1)]

    assert promoted(queue, 10, adult=0, child=5, vip=5) == ["d"]


def test_an_entry_passed_over_blocks_its_other_types_too():
    queue = [entry("a", adult=1), entry("b", adult=1, child=1), entry("c", child=1)]

    assert promoted(queue, 10, adult=0, child=5) == []


def test_promotions_take_room_from_the_event_and_from_their_types_in_order():
    queue = [entry("a", adult=2, child=1), entry("b", child=2), entry("c", vip=1), entry("d", vip=1)]

    assert promoted(queue, 5, adult=2, child=3, vip=5) == ["a", "b"]


def test_the_family_of_four_gets_all_four_tickets_once_both_types_have_room():
    family = entry("family", adult=2, child=2)

    assert promoted([family], 4, adult=2, child=1) == []
    assert promoted([family], 4, adult=2, child=2) == ["family"]


def test_a_new_booking_waits_behind_an_older_entry_wanting_one_of_its_types():
    queue = [entry("family", adult=2, child=2)]

    assert not gets_tickets_at_once(queue, 5, {"adult": 5, "child": 1}, entry("new", adult=1))
    assert gets_tickets_at_once(queue, 5, {"adult": 5, "child": 1, "vip": 1}, entry("new", vip=1))


def test_a_new_booking_waits_while_an_older_entry_wants_more_than_the_event_has_left():
    queue = [entry("four", adult=4)]

    assert not gets_tickets_at_once(queue, 3, {"adult": 9, "child": 9}, entry("new", child=1))


def test_a_new_booking_waits_when_one_of_its_types_lacks_room():
    assert not gets_tickets_at_once([], 5, {"adult": 5, "child": 1}, entry("new", adult=1, child=2))
    assert gets_tickets_at_once([], 5, {"adult": 5, "child": 2}, entry("new", adult=1, child=2))


TYPES = ["a", "b", "c"]


@st.composite
def queues(draw, types=TYPES) -> list[Entry]:
    wanted = st.dictionaries(st.sampled_from(types), st.integers(1, 4), min_size=1, max_size=len(types))
    return [Entry(n, items) for n, items in enumerate(draw(st.lists(wanted, max_size=12)))]


rooms = st.integers(0, 12)
type_rooms = st.fixed_dictionaries({t: st.integers(0, 8) for t in TYPES})


def strict_fifo(queue: list[Entry], available: int) -> list[Entry]:
    """Version 2's rule: promote from the head while it fits; the first that does not fit stops it."""
    promoted = []
    for waiting in queue:
        if waiting.quantity > available:
            break
        promoted.append(waiting)
        available -= waiting.quantity
    return promoted


@settings(max_examples=300, database=None)
@given(queues(types=["a"]), rooms, st.integers(0, 12))
def test_with_one_type_the_walk_is_version_2s_strict_fifo(queue, room, type_room):
    assert walk(queue, room, {"a": type_room}) == strict_fifo(queue, min(room, type_room))


@settings(max_examples=300, database=None)
@given(queues(), rooms, type_rooms)
def test_no_promoted_entry_shares_a_type_with_an_older_entry_left_waiting(queue, room, type_room):
    promoted = walk(queue, room, type_room)
    for later in promoted:
        left = [older for older in queue[: queue.index(later)] if older not in promoted]
        assert all(older.items.keys().isdisjoint(later.items) for older in left)


def after(queue, room, type_room) -> tuple[list[Entry], int, dict[str, int]]:
    """The queue and the rooms once a walk's promotions are made."""
    promoted = walk(queue, room, type_room)
    rest = {t: free - sum(e.items.get(t, 0) for e in promoted) for t, free in type_room.items()}
    return [e for e in queue if e not in promoted], room - sum(e.quantity for e in promoted), rest


@settings(max_examples=300, database=None)
@given(queues(), rooms, type_rooms)
def test_a_walk_leaves_a_stable_queue_within_the_room_it_had(queue, room, type_room):
    rest, room_left, type_room_left = after(queue, room, type_room)

    assert is_stable(rest, room_left, type_room_left)
    assert room_left >= 0 and min(type_room_left.values()) >= 0


def admitted_by_counters(queue, room, type_room, new: Entry) -> bool:
    """The database's O(1) answer for a new booking on a stable queue (book_ticket.sql): its total and each
    item fit, none of its types has waiting tickets, and no waiting entry wants more than the event's room."""
    waiting_types = {t for e in queue for t in e.items}
    return (
        new.quantity <= room
        and waiting_types.isdisjoint(new.items)
        and all(wanted <= type_room[t] for t, wanted in new.items.items())
        and all(e.quantity <= room for e in queue)
    )


@settings(max_examples=500, database=None)
@given(queues(), rooms, type_rooms, st.dictionaries(st.sampled_from(TYPES), st.integers(1, 4), min_size=1))
def test_on_a_stable_queue_the_counters_answer_a_new_booking_as_the_walk_does(queue, room, type_room, items):
    stable, room_left, type_room_left = after(queue, room, type_room)
    new = Entry("new", items)

    assert gets_tickets_at_once(stable, room_left, type_room_left, new) == admitted_by_counters(
        stable, room_left, type_room_left, new
    )
