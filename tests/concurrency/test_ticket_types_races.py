"""Races on one event with ticket types (issue 26): 200 bookings of 1..3 types and 50 cancels, whole
and partial by items, through the API, many threads at once, each request on a pooled connection of its
own (the app's pool is as large as the threads).

One event of 60 tickets under a shared cap (adult 40, child 30, vip 10: 80 between them). 150 users
rush it; then 50 more book while 50 of the first cancel (every holder, and waiters to make up the
number; half of them give up only part of their tickets). While each race runs, a checker reads the
tables again and again, each time in one REPEATABLE READ snapshot (a committed state), and checks the
invariants per type and for the event there (tests.helpers.typed_rule.type_violations: the counts,
each type within its total, nobody holding tickets past an older waiting entry of one of its types, the
queue stable: the walk would promote nobody); after each race, once more, and the answers must add up:
every request succeeded, and each promoted booking was reported by exactly one cancel.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from tests.helpers.api import ADMIN_TOKEN, apps_from
from tests.helpers.races import THREADS, race
from tests.helpers.typed_rule import read_tables, tables_violations

TOTAL = 60
TYPES = [
    {"code": "adult", "totalTickets": 40},
    {"code": "child", "totalTickets": 30},
    {"code": "vip", "totalTickets": 10, "maxPerBooking": 2},
]
EARLY = [f"early-{n}" for n in range(150)]
LATE = [f"late-{n}" for n in range(50)]
CANCELS = 50


def order(chance: random.Random) -> list[dict]:
    """1..3 types, 1..2 tickets of each."""
    codes = chance.sample([t["code"] for t in TYPES], chance.randint(1, 3))
    return [{"ticketType": code, "quantity": chance.randint(1, 2)} for code in codes]


@pytest.fixture(scope="module")
def typed_app(config):
    """The app with a connection for each race thread."""
    with apps_from(config) as build:
        yield build(db_pool_size=THREADS)


class Checker:
    """Reads the event's tables in one snapshot after another until stopped; the violations seen."""

    def __init__(self, engine, event: str) -> None:
        self.engine, self.event = engine, event
        self.stopping = threading.Event()
        self.snapshots = 0
        self.violations: list[str] = []
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            while not self.stopping.is_set():
                with conn.begin():
                    self.violations += tables_violations(read_tables(conn, self.event))
                self.snapshots += 1

    def __enter__(self) -> Checker:
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stopping.set()
        self.thread.join()


def race_requests(app, requests: list[tuple[str, dict]]) -> list[tuple[int, dict]]:
    """POST each (path, body) on THREADS threads, each with a client of its own; the answers in order."""
    numbered = list(enumerate(requests))
    lanes = [numbered[i::THREADS] for i in range(THREADS)]

    def run(lane):
        client = app.test_client()
        return [(i, client.post(path, json=body)) for i, (path, body) in lane]

    answered = sorted(pair for lane in race([lambda lane=lane: run(lane) for lane in lanes]) for pair in lane)
    return [(response.status_code, response.get_json()) for _, response in answered]


@pytest.fixture(scope="module")
def rush(typed_app, engine):
    """The event after 150 users rushed it: (event id, each user's order, the checker, the answers)."""
    body = {"totalTickets": TOTAL, "maxPerBooking": 6, "ticketTypes": TYPES}
    opened = typed_app.test_client().post(
        "/api/initialize", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert opened.status_code == 201, opened.get_json()
    event = opened.get_json()["event"]["id"]
    chance = random.Random(26)
    orders = {user: order(chance) for user in EARLY + LATE}
    with Checker(engine, event) as checker:
        answers = race_requests(typed_app, [("/api/book", booking(event, user, orders[user])) for user in EARLY])
    return event, orders, checker, answers


def booking(event: str, user: str, items: list[dict] | None = None) -> dict:
    return {"eventId": event, "userId": user, **({"items": items} if items else {})}


def test_a_rush_of_bookings_across_types_keeps_every_invariant_in_every_snapshot(rush, engine):
    event, _, checker, answers = rush
    assert Counter(status for status, _ in answers) == {201: len(EARLY)}
    assert checker.snapshots > 0 and checker.violations == []
    with engine.connect() as conn:
        tables = read_tables(conn, event)
    assert tables_violations(tables) == []
    assert {row.status for row in tables.bookings} == {"confirmed", "waiting"}  # sold out, and a queue


def test_cancels_whole_and_partial_racing_bookings_promote_each_once_by_the_walk(rush, typed_app, engine):
    event, orders, _, answers = rush
    chance = random.Random(62)
    holders = [b["booking"]["userId"] for _, b in answers if b["booking"]["status"] == "confirmed"]
    waiters = [b["booking"]["userId"] for _, b in answers if b["booking"]["status"] == "waiting"]
    leaving = holders + chance.sample(waiters, CANCELS - len(holders))
    cancels = [("/api/cancel", booking(event, user, part(chance, orders[user]))) for user in leaving]
    books = [("/api/book", booking(event, user, orders[user])) for user in LATE]

    with Checker(engine, event) as checker:
        answered = race_requests(typed_app, cancels + books)

    assert Counter(status for status, _ in answered) == {200: CANCELS, 201: len(LATE)}
    assert checker.snapshots > 0 and checker.violations == []
    with engine.connect() as conn:
        tables = read_tables(conn, event)
    assert tables_violations(tables) == []
    promoted = Counter(p["userId"] for _, answer in answered[:CANCELS] for p in answer["promotedBookings"])
    waiting = {row.user_id for row in tables.bookings if row.status == "waiting"}
    assert promoted and max(promoted.values()) == 1 and not set(promoted) & waiting


def part(chance: random.Random, items: list[dict]) -> list[dict] | None:
    """Half the cancels are whole (None); the others give up one ticket of one item, or all of one of
    several items, or the whole booking if that is all it has."""
    if chance.random() < 0.5:
        return None
    item = chance.choice(items)
    return [{"ticketType": item["ticketType"], "quantity": chance.randint(1, item["quantity"])}]
