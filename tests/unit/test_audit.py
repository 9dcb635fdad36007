"""The ledger replay on its own: each rule it enforces, entry by entry."""

from types import SimpleNamespace

import pytest

from app.operations.audit import Replay


def entries(*steps: str) -> list[SimpleNamespace]:
    """Ledger entries from 'kind booking user [quantity]' strings (one ticket unless said), numbered in order."""
    return [
        SimpleNamespace(seq=n, kind=kind, booking_id=booking, user_id=user, quantity=int(quantity[0]) if quantity else 1)
        for n, (kind, booking, user, *quantity) in enumerate((step.split() for step in steps), start=1)
    ]


def replay(total_tickets: int, *steps: str) -> list[str]:
    replayer = Replay(total_tickets)
    return [problem for entry in entries(*steps) for problem in replayer.apply(entry)]


def test_a_history_the_rules_allow_replays_without_a_problem():
    history = ["booked b1 a", "waitlisted b2 b", "waitlisted b3 c", "cancelled b1 a", "promoted b2 b",
               "cancelled b3 c", "cancelled b2 b", "booked b4 a"]

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
        (
            1,
            ["booked b1 a", "waitlisted b2 b", "cancelled b1 a", "booked b3 c"],
            ["the ticket freed just before went to nobody, though b2 was waiting"],
        ),
    ],
)
def test_replay_names_the_rule_an_entry_breaks(total, steps, expected):
    assert replay(total, *steps) == expected
