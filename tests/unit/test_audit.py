"""The ledger replay on its own: each rule it enforces, entry by entry."""

from types import SimpleNamespace

import pytest

from app.operations.audit import Replay


def entries(*steps: str) -> list[SimpleNamespace]:
    """Ledger entries from 'kind booking user [quantity]' strings (one ticket unless said), numbered in order."""
    return [
        SimpleNamespace(
            seq=n, kind=kind, booking_id=booking, user_id=user, quantity=int(quantity[0]) if quantity else 1
        )
        for n, (kind, booking, user, *quantity) in enumerate((step.split() for step in steps), start=1)
    ]


def replay(total_tickets: int, *steps: str) -> list[str]:
    replayer = Replay(total_tickets)
    return [problem for entry in entries(*steps) for problem in replayer.apply(entry)]


def test_a_history_of_several_tickets_and_partial_cancels_replays_without_a_problem():
    history = [
        "booked b1 a 3",
        "waitlisted b2 b 3",
        "waitlisted b3 c 1",
        "reduced b2 b 1",
        "reduced b1 a 1",
        "promoted b2 b 2",
        "cancelled b1 a 2",
        "promoted b3 c 1",
        "booked b4 d 1",
    ]

    assert replay(4, *history) == []


def test_the_rule_confirms_from_the_head_while_it_fits_and_stops_at_the_first_that_does_not():
    rule = Replay(4)
    statuses = [
        rule.book(booking, user, quantity)
        for booking, user, quantity in [("b1", "a", 4), ("b2", "b", 2), ("b3", "c", 1), ("b4", "d", 3), ("b5", "e", 1)]
    ]

    promoted = rule.cancel("b1", 3)  # 3 free: b2 (2) and b3 (1) fit, b4 (3) does not, b5 (1) must not overtake it

    assert statuses == ["confirmed", "waiting", "waiting", "waiting", "waiting"]
    assert (promoted, rule.queue, rule.available) == (["b2", "b3"], ["b4", "b5"], 0)
    assert (rule.position("b5"), rule.tickets_ahead("b5"), rule.waiting_tickets) == (2, 3, 4)


def test_a_history_the_rules_allow_replays_without_a_problem():
    history = [
        "booked b1 a",
        "waitlisted b2 b",
        "waitlisted b3 c",
        "cancelled b1 a",
        "promoted b2 b",
        "cancelled b3 c",
        "cancelled b2 b",
        "booked b4 a",
    ]

    assert replay(1, *history) == []


@pytest.mark.parametrize(
    "total, steps, expected",
    [
        (1, ["booked b1 a", "booked b2 b"], ["no ticket was left"]),
        (1, ["waitlisted b1 a"], ["1 tickets were left"]),
        (2, ["booked b1 a", "booked b1 a"], ["the booking was created twice"]),
        (2, ["booked b1 a", "booked b2 a"], ["the user already held b1"]),
        (2, ["cancelled b1 a"], ["the booking was never booked"]),
        (2, ["booked b1 a", "cancelled b1 a", "cancelled b1 a"], ["the booking was cancelled"]),
        (2, ["booked b1 a", "cancelled b1 b"], ["booking b1 belongs to 'a', not 'b'"]),
        (2, ["promoted b1 a"], ["no ticket had been freed for it"]),
        (3, ["booked b1 a 2", "waitlisted b2 b 2", "promoted b2 b 2"], ["no ticket had been freed for it"]),
        (3, ["booked b1 a 2", "waitlisted b2 b 3", "waitlisted b3 c 1", "promoted b3 c"], ["b2 had waited longer"]),
        (3, ["booked b1 a 2", "waitlisted b2 b 3", "booked b3 c 1"], ["b2 was waiting"]),
        (3, ["booked b1 a 2", "booked b2 b 2"], ["only 1 tickets were left"]),
        (3, ["booked b1 a 2", "reduced b1 a 2"], ["a partial cancel of 2 when it held 2"]),
        (3, ["reduced b1 a 1"], ["the booking was never booked"]),
        (3, ["booked b1 a 2", "cancelled b1 a 1"], ["it gave up 1 of the 2 tickets it held"]),
        (
            3,
            ["booked b1 a 2", "waitlisted b2 b 2", "reduced b1 a 1", "promoted b2 b 1"],
            ["it was promoted with 1 tickets but wanted 2"],
        ),
        (
            1,
            ["booked b1 a", "waitlisted b2 b", "cancelled b1 a", "booked b3 c"],
            ["the ticket freed just before went to nobody, though b2 was waiting"],
        ),
    ],
)
def test_replay_names_the_rule_an_entry_breaks(total, steps, expected):
    assert replay(total, *steps) == expected


def organiser(kind: str, total_from: int | None = None, total_to: int | None = None) -> SimpleNamespace:
    """An organiser's ledger entry: it names no booking."""
    return SimpleNamespace(
        kind=kind,
        booking_id=None,
        user_id=None,
        quantity=None,
        total_tickets_from=total_from,
        total_tickets_to=total_to,
    )


def replay_with(total_tickets: int, *steps) -> list[str]:
    """Like `replay`, with organiser entries (SimpleNamespaces) among the 'kind booking user' strings."""
    replayer = Replay(total_tickets)
    found = [entry if isinstance(entry, SimpleNamespace) else entries(entry)[0] for entry in steps]
    return [problem for entry in found for problem in replayer.apply(entry)]


def test_a_resize_of_the_model_promotes_by_the_fifo_rule_and_stops_at_the_head_that_does_not_fit():
    model = Replay(1)
    model.book("b1", "a", 1)
    model.book("b2", "b", 1)
    model.book("b3", "c", 3)
    model.book("b4", "d", 1)

    assert model.resize(2) == ["b2"] and model.resize(4) == [] and model.resize(6) == ["b3", "b4"]


@pytest.mark.parametrize(
    "total, steps, expected",
    [
        (1, [organiser("capacity_changed", 2, 3)], ["it changed a capacity of 2, but the event had 1"]),
        (
            2,
            ["booked b1 a", "booked b2 b", organiser("capacity_changed", 2, 1)],
            ["the new capacity 1 is below the 2 tickets held"],
        ),
        (
            1,
            ["booked b1 a", "waitlisted b2 b 3", organiser("capacity_changed", 1, 2)],
            ["the new capacity 2 is below a waiting entry's quantity"],
        ),
        (
            1,
            ["booked b1 a", "waitlisted b2 b", organiser("capacity_changed", 1, 2), "booked b3 c"],
            ["the ticket freed just before went to nobody, though b2 was waiting"],
        ),
        (1, [organiser("sales_closed"), organiser("sales_closed")], ["sales were closed already"]),
        (1, [organiser("sales_opened")], ["sales were open already"]),
        (1, [organiser("sales_closed"), "booked b1 a"], ["sales were closed"]),
        (1, [organiser("event_cancelled"), "booked b1 a"], ["the event had been cancelled"]),
        (1, [organiser("event_cancelled"), organiser("event_updated")], ["the event had been cancelled"]),
    ],
)
def test_replay_names_the_rule_an_organisers_change_breaks(total, steps, expected):
    assert replay_with(total, *steps) == expected


def test_an_event_updated_entry_replays_as_a_no_op():
    updated, plain = Replay(2), Replay(2)
    for entry in entries("booked b1 a", "booked b2 b", "waitlisted b3 c"):
        assert updated.apply(entry) == plain.apply(entry) == []

    assert updated.apply(organiser("event_updated")) == []
    assert vars(updated) == vars(plain)


def stamped(change: str, *steps: str) -> list[SimpleNamespace]:
    """Ledger entries as `entries` makes them, all of one change: one request id, one stamp."""
    return [SimpleNamespace(**vars(entry), request_id=change, created_at=change) for entry in entries(*steps)]


def test_tickets_freed_by_several_entries_of_one_change_may_be_passed_on_at_its_end():
    replayer = Replay(2)
    history = entries(
        "booked b1 a",
        "booked b2 b",
        "waitlisted b3 c",
        "waitlisted b4 d",
        "waitlisted b5 e",
        "waitlisted b6 f",
        "cancelled b1 a",
        "offered b3 c",
        "cancelled b2 b",
        "offered b4 d",
    )
    history += stamped("sweep-1", "expired b3 c", "expired b4 d", "offered b5 e", "offered b6 f")

    assert [problem for entry in history for problem in replayer.apply(entry)] == []


def test_a_ticket_freed_by_one_change_and_not_passed_on_is_named_at_the_next_change():
    replayer = Replay(1)
    history = entries("booked b1 a", "waitlisted b2 b")
    history += stamped("cancel-1", "cancelled b1 a") + stamped("book-1", "booked b3 c")

    assert [problem for entry in history for problem in replayer.apply(entry)] == [
        "the ticket freed just before went to nobody, though b2 was waiting"
    ]


FAMILY_EVENT = {"adult": 4, "child": 2, "vip": 1}  # an event of 6 tickets over three types


def typed(*steps: str) -> list[SimpleNamespace]:
    """Ledger entries from 'kind booking user type:quantity[,type:quantity...]' strings, numbered in order."""
    found = []
    for n, (kind, booking, user, items) in enumerate((step.split() for step in steps), start=1):
        wanted = {code: int(quantity) for code, quantity in (item.split(":") for item in items.split(","))}
        found.append(
            SimpleNamespace(
                seq=n,
                kind=kind,
                booking_id=booking,
                user_id=user,
                quantity=sum(wanted.values()),
                item_types=list(wanted),
                item_quantities=list(wanted.values()),
            )
        )
    return found


def replay_typed(*steps: str, total: int = 6, types: dict | None = None) -> list[str]:
    replayer = Replay(total, types or FAMILY_EVENT)
    return [problem for entry in typed(*steps) for problem in replayer.apply(entry)]


def test_a_history_with_ticket_types_the_rule_allows_replays_without_a_problem():
    history = [
        "booked fam a adult:2,child:2",
        "waitlisted kid b child:1",  # no child ticket left
        "booked vip c vip:1",  # nobody waits for a vip ticket
        "waitlisted par d adult:1,child:1",  # behind kid, on child
        "cancelled vip c vip:1",
        "booked vip2 e vip:1",  # 2 left: nobody waits for more, nor for a vip ticket
    ]

    assert replay_typed(*history) == []


def test_a_booking_while_an_older_entry_waits_for_one_of_its_types_is_named():
    history = ["booked fam a adult:2,child:2", "waitlisted par b adult:1,child:1", "booked two c adult:1"]

    assert replay_typed(*history) == ["par was waiting"]


def test_an_entry_wanting_only_other_types_is_promoted_ahead_without_a_problem():
    history = [
        "booked fam a adult:3,child:2",
        "waitlisted big b adult:2",  # 1 adult ticket left
        "waitlisted kid c child:1",  # no child ticket left
        "reduced fam a child:1",  # a child ticket freed: kid, who wants no adult ticket, goes ahead of big
        "promoted kid c child:1",
    ]

    assert replay_typed(*history) == []


def test_a_promotion_that_overtakes_an_older_entry_wanting_its_type_is_named():
    history = [
        "booked fam a adult:4",
        "waitlisted big b adult:2",
        "waitlisted one c adult:1",
        "reduced fam a adult:1",
        "promoted one c adult:1",  # big waited longer for adult tickets, and one freed is not enough for it
    ]

    assert replay_typed(*history) == ["big had waited longer"]


def test_a_promotion_out_of_the_walks_order_is_named():
    history = [
        "booked fam a adult:2,child:2",
        "waitlisted kid b child:1",
        "waitlisted kid2 c child:1",
        "cancelled fam a adult:2,child:2",
        "promoted kid2 c child:1",
        "promoted kid b child:1",
    ]

    assert replay_typed(*history) == ["kid had waited longer"]


def test_a_booking_while_the_event_lacks_room_for_an_older_entry_is_named_even_of_another_type():
    history = ["booked fam a adult:4", "waitlisted big b adult:3,child:1", "booked kid c child:1"]

    assert replay_typed(*history) == ["big was waiting"]


def test_a_booking_beyond_its_types_room_is_named():
    assert replay_typed("booked fam a vip:1", "booked two b vip:1") == ["only 0 vip tickets were left"]


def test_a_freed_ticket_of_a_type_not_passed_on_is_named():
    history = ["booked fam a child:2", "waitlisted kid b child:1", "reduced fam a child:1", "booked x c adult:1"]

    assert replay_typed(*history) == ["the ticket freed just before went to nobody, though kid was waiting"]


def type_change(kind: str, code: str, total_from: int, total_to: int) -> SimpleNamespace:
    """An organiser's ledger entry of a ticket type (type_added or type_changed)."""
    return SimpleNamespace(**vars(organiser(kind, total_from, total_to)), ticket_type=code)


@pytest.mark.parametrize(
    "steps, expected",
    [
        ([type_change("type_changed", "vip", 2, 3)], ["it changed vip's total of 2, but the type had 1"]),
        ([type_change("type_changed", "bar", 0, 1)], ["type bar was never added"]),
        ([type_change("type_added", "vip", 0, 1)], ["type vip was there already"]),
        ([type_change("type_added", "vip2", 0, 7)], ["vip2's new total 7 is above the event's 6"]),
        (
            [*typed("booked a a child:2"), type_change("type_changed", "child", 2, 1)],
            ["child's new total 1 is below the 2 tickets it holds"],
        ),
        (
            [
                *typed("booked a a vip:1", "waitlisted b b vip:1"),
                type_change("type_changed", "vip", 1, 2),
                *typed("booked c c adult:1"),
            ],
            ["the ticket freed just before went to nobody, though b was waiting"],
        ),
    ],
)
def test_replay_names_the_rule_a_change_of_types_breaks(steps, expected):
    replayer = Replay(6, FAMILY_EVENT)

    assert [problem for entry in steps for problem in replayer.apply(entry)] == expected


def test_the_model_serves_the_family_of_four_all_or_none_and_lets_others_pass_only_on_other_types():
    model = Replay(8, {"adult": 8, "child": 2, "vip": 2})
    model.book("early", "e", {"adult": 2, "child": 2})
    model.book("solo", "s", {"adult": 4})
    statuses = [
        model.book("family", "f", {"adult": 2, "child": 2}),  # nothing left
        model.book("parent", "p", {"adult": 1}),
        model.book("friend", "v", {"vip": 1}),
    ]

    promoted_by_cancel = model.cancel("solo")  # 4 free, no child ticket: the family blocks adult and child
    promoted_by_type_raise = model.retype("child", 4)  # 3 free: the event lacks room for the family's 4
    promoted_by_raise = model.resize(10)

    assert statuses == ["waiting", "waiting", "waiting"]
    assert (promoted_by_cancel, promoted_by_type_raise, promoted_by_raise) == (["friend"], [], ["family", "parent"])


def test_the_model_on_one_type_keeps_its_total_with_the_events():
    model = Replay(2)
    model.book("b1", "a", 2)
    model.book("b2", "b", 1)

    assert model.resize(3) == ["b2"] and model.type_room() == {"standard": 0}
