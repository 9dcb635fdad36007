"""The walk issue 26 is checked with: a black-box client over HTTP against `make run`'s launcher books
across ticket types into a sold-out event with a shared cap (6 tickets; adult 4, child 4, vip 2: the
types' totals add up to more), cancels and raises, and checks who was promoted, in which order, and
the counts per type, at every step; in AUTH_MODE=open and in AUTH_MODE=jwt (each user with a token of
its own).

The steps, and what the contract's walk makes of them:
1. holder-a (adult 3) and holder-b (child 2, vip 1) sell it out; then w1 (adult 2), w2 (child 1), w3
   (adult 1, child 1), w4 (vip 1), w5 (child 2) wait, in that order.
2. holder-b cancels: 3 free. w1's adult item does not fit (1 adult left): adult blocked; w2 goes ahead
   (child only); w3 wants a blocked type: passed over; w4 goes ahead (vip only); w5 (2) finds 1 left:
   the walk stops. Promoted: w2, w4.
3. A newcomer wanting vip 1, with 1 ticket and 1 vip left, still waits: w1 is stuck on the event cap.
4. adult raised to 6: nobody, the event's cap (1 left) stops the walk at w1 (2).
5. The event raised to 9: w1 then w3 (4 free, 3 adult left), and w5 (child 2) finds none left.
6. holder-a gives up 2 adult tickets (a partial cancel by items): w5 gets its 2 children; the newcomer
   (vip 1) finds none left.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.operations import audit
from tests.helpers.walks import LiveClient

ADULT, CHILD, VIP = "adult", "child", "vip"
TYPES = [
    {"code": ADULT, "name": "Adult", "totalTickets": 4},
    {"code": CHILD, "name": "Child", "totalTickets": 4},
    {"code": VIP, "name": "VIP", "totalTickets": 2, "maxPerBooking": 1},
]
ORDERS = {
    "holder-a": {ADULT: 3},
    "holder-b": {CHILD: 2, VIP: 1},
    "w1": {ADULT: 2},
    "w2": {CHILD: 1},
    "w3": {ADULT: 1, CHILD: 1},
    "w4": {VIP: 1},
    "w5": {CHILD: 2},
    "newcomer": {VIP: 1},
}


def items(order: dict[str, int]) -> list[dict]:
    return [{"ticketType": code, "quantity": quantity} for code, quantity in order.items()]


@dataclass(frozen=True)
class Walker(LiveClient):
    """The types walk's client: books by items, and reads the counts per type."""

    def book(self, event_id: str, user: str) -> str:
        status, booked = self.act("/api/book", event_id, user, items=items(ORDERS[user]))
        assert status == 201, booked
        shown = {item["ticketType"]: item["quantity"] for item in booked["booking"]["items"]}
        assert (shown, booked["booking"]["quantity"]) == (ORDERS[user], sum(ORDERS[user].values())), booked
        return booked["booking"]["status"]

    def counts(self, event_id: str) -> tuple[int, int, dict[str, tuple[int, int, int]]]:
        """(availableTickets, waitingListCount, {type: (totalTickets, availableTickets, waitingTickets)})."""
        event = self.admin("GET", f"/api/status/{event_id}")[1]["event"]
        types = {
            t["code"]: (t["totalTickets"], t["availableTickets"], t["waitingTickets"]) for t in event["ticketTypes"]
        }
        assert sum(t[2] for t in types.values()) == event["waitingTickets"], event
        return event["availableTickets"], event["waitingListCount"], types

    def place(self, event_id: str, user: str) -> tuple[int, int, dict[str, int]]:
        """A waiting user's (waitingPosition, ticketsAhead, each item's ticketsAhead)."""
        booking = self.booking(event_id, user)
        assert booking["status"] == "waiting", booking
        ahead = {item["ticketType"]: item["ticketsAhead"] for item in booking["items"]}
        return booking["waitingPosition"], booking["ticketsAhead"], ahead

    def patch(self, event_id: str, body: dict) -> list[str]:
        """An organiser's PATCH; the users it promoted, in order."""
        status, updated = self.admin("PATCH", f"/api/events/{event_id}", body)
        assert status == 200, updated
        return promoted_users(updated)


@pytest.fixture
def walker(launcher, identity) -> Walker:
    return Walker(launcher.base_url, identity[1])


def promoted_users(answer: dict) -> list[str]:
    assert all(b["status"] == "confirmed" for b in answer["promotedBookings"]), answer
    return [b["userId"] for b in answer["promotedBookings"]]


def sell_out_and_queue(walker: Walker) -> str:
    status, opened = walker.admin(
        "POST", "/api/initialize", {"totalTickets": 6, "maxPerBooking": 4, "ticketTypes": TYPES}
    )
    assert status == 201, opened
    event_id = opened["event"]["id"]
    assert [walker.book(event_id, user) for user in ("holder-a", "holder-b")] == ["confirmed"] * 2
    assert [walker.book(event_id, user) for user in ("w1", "w2", "w3", "w4", "w5")] == ["waiting"] * 5
    assert walker.counts(event_id) == (0, 5, {ADULT: (4, 1, 3), CHILD: (4, 2, 4), VIP: (2, 1, 1)})
    assert walker.place(event_id, "w3") == (3, 3, {ADULT: 2, CHILD: 1})
    assert walker.place(event_id, "w5") == (5, 2, {CHILD: 2})
    return event_id


def a_cancel_lets_entries_of_other_types_go_ahead(walker: Walker, event_id: str) -> None:
    status, cancelled = walker.act("/api/cancel", event_id, "holder-b")
    assert (status, cancelled["booking"]["status"]) == (200, "cancelled"), cancelled
    assert promoted_users(cancelled) == ["w2", "w4"]
    assert walker.counts(event_id) == (1, 3, {ADULT: (4, 1, 3), CHILD: (4, 3, 3), VIP: (2, 1, 0)})
    assert walker.place(event_id, "w3") == (2, 2, {ADULT: 2, CHILD: 0})
    assert walker.book(event_id, "newcomer") == "waiting"  # w1 is stuck on the event's cap: nobody passes it
    assert walker.place(event_id, "newcomer") == (4, 0, {VIP: 0})


def raises_promote_by_the_walk(walker: Walker, event_id: str) -> None:
    raise_adult = {"ticketTypes": [{"code": ADULT, "totalTickets": 6}]}
    assert walker.patch(event_id, raise_adult) == []  # the event's cap stops the walk at w1
    assert walker.counts(event_id) == (1, 4, {ADULT: (6, 3, 3), CHILD: (4, 3, 3), VIP: (2, 1, 1)})
    assert walker.patch(event_id, {"totalTickets": 9}) == ["w1", "w3"]
    assert walker.counts(event_id) == (0, 2, {ADULT: (6, 0, 0), CHILD: (4, 2, 2), VIP: (2, 1, 1)})
    assert walker.place(event_id, "w5") == (1, 0, {CHILD: 0})


def a_partial_cancel_by_items_promotes(walker: Walker, event_id: str) -> None:
    status, reduced = walker.act("/api/cancel", event_id, "holder-a", items=items({ADULT: 2}))
    assert (status, reduced["booking"]["status"], reduced["booking"]["quantity"]) == (200, "confirmed", 1), reduced
    assert promoted_users(reduced) == ["w5"]
    assert walker.counts(event_id) == (0, 1, {ADULT: (6, 2, 0), CHILD: (4, 0, 0), VIP: (2, 1, 1)})
    assert walker.place(event_id, "newcomer") == (1, 0, {VIP: 0})


EXPECTED_LEDGER = [
    ("booked", "holder-a"),
    ("booked", "holder-b"),
    *[("waitlisted", user) for user in ("w1", "w2", "w3", "w4", "w5")],
    ("cancelled", "holder-b"),
    ("promoted", "w2"),
    ("promoted", "w4"),
    ("waitlisted", "newcomer"),
    ("promoted", "w1"),
    ("promoted", "w3"),
    ("reduced", "holder-a"),
    ("promoted", "w5"),
]


def test_books_cancels_and_raises_across_types_walked_over_http_against_the_launcher(walker, engine):
    event_id = sell_out_and_queue(walker)
    a_cancel_lets_entries_of_other_types_go_ahead(walker, event_id)
    raises_promote_by_the_walk(walker, event_id)
    a_partial_cancel_by_items_promotes(walker, event_id)

    bookings = [(entry["kind"], entry["userId"]) for entry in walker.ledger(event_id) if entry["userId"]]
    assert bookings == EXPECTED_LEDGER
    assert audit.check(engine).ok
