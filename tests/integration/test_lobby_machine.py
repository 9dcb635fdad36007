"""The fair sale opening as a stateful property (issue 27): the SQL functions against a plain model.

Hypothesis drives, on an event of one to three ticket types under a shared cap (issue 26), random books
(a quantity on an event of one type, items across types on one of several) and cancels before the opening, the opening itself, books and cancels
between the opening and the draw and during it, the draw's steps (the ranking, then slices of random
size), and books and cancels after it, straight into the database functions (one connection, autocommit,
as the service and the lobby-draw unit send them). The model is plain Python: the lobby as a dict, the
ranks as the draw fixes them (they are random: the model reads them once and checks they are a valid
draw: the entries that joined before the opening first, each once, then the late ones in arrival order),
and `audit.Replay`'s rule with types for every booking the draw or a later `book` makes, in rank order. After every
step the two agree on each answer, each user's status and the lobby's count, and `flask check`'s audit of
the event finds nothing.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, text

from app.booking.domain import CANCELLED, LOBBY
from app.database.tables import events
from app.operations import audit
from tests.helpers.lobby import OPEN_NOW, later
from tests.helpers.queue import cancel_sql

# The event and its types in one statement, as services.OpenEvent opens them (one type: `standard`, the event).
NEW_EVENT = text("""
WITH opened AS (
    INSERT INTO events (total_tickets, available_tickets, max_per_booking, sales_open_at, ticket_type_count)
    VALUES (:total, :total, 4, :opens, cardinality(CAST(:codes AS text[]))) RETURNING id),
types AS (
    INSERT INTO ticket_types (event_id, position, code, total_tickets)
    SELECT opened.id, t.position, t.code, t.total
      FROM opened, unnest(CAST(:codes AS text[]), CAST(:totals AS integer[])) WITH ORDINALITY AS t (code, total, position))
SELECT id FROM opened
""")
# A booking as the service sends it: a bare quantity on an event of one type, items on one of several.
BOOK = text("SELECT * FROM book_ticket(:event, :user, 'machine', :quantity, :codes, :quantities)")
STEP = text("SELECT * FROM draw_lobby(:event, 'machine', :slice)")
RANKS = text(
    "SELECT b.user_id FROM lobby_ranks r JOIN bookings b ON b.id = r.booking_id WHERE r.event_id = :event ORDER BY r.rank"
)
STATUSES = text("SELECT user_id, status FROM bookings WHERE event_id = :event AND status <> 'cancelled'")
BOOKING_OF = text("SELECT id FROM bookings WHERE event_id = :event AND user_id = :user AND status <> 'cancelled'")
LOBBY_COUNT = text("SELECT lobby_count FROM events WHERE id = :event")


class LobbyRule(RuleBasedStateMachine):
    """One event per run, opening with a draw."""

    def __init__(self, engine) -> None:
        super().__init__()
        self.conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def teardown(self) -> None:
        self.conn.close()

    @initialize(total=st.integers(1, 8), data=st.data())
    def open(self, total: int, data) -> None:
        count = data.draw(st.integers(1, 3), label="types")
        totals = [total] if count == 1 else [data.draw(st.integers(1, total), label="type total") for _ in range(count)]
        self.types = dict(zip(["standard"] if count == 1 else ["a", "b", "c"][:count], totals, strict=False))
        parameters = {"total": total, "opens": later(), "codes": list(self.types), "totals": totals}
        self.event = self.conn.execute(NEW_EVENT, parameters).scalar_one()
        self.limit = min(total, 4)  # the most one booking may want: the event's maxPerBooking, and its total
        self.rule = audit.Replay(total, self.types)  # the rule with types, for what the draw and later books do
        self.lobby: dict[str, dict[str, int]] = {}  # user -> items, in arrival order
        self.early: list[str] = []  # those in the lobby when it opened, or before (dicts keep arrival order)
        self.opened = False
        self.ranked: list[str] | None = None  # the users in rank order, once the draw has ranked them
        self.seated = 0  # ranks the draw has passed
        self.drawn = False
        self.users = 0

    def new_user(self) -> str:
        self.users += 1
        return f"user-{self.users}"

    def wanted(self, data) -> dict[str, int]:
        """A booking within the limits: of some types, each item at most its type's total, all at most `limit`."""
        codes = data.draw(st.lists(st.sampled_from(list(self.types)), min_size=1, unique=True), label="types")
        codes = codes[: self.limit]  # each item wants a ticket at least
        items, left = {}, self.limit
        for n, code in enumerate(codes):
            later_items = len(codes) - n - 1  # each of them wants a ticket too
            items[code] = data.draw(st.integers(1, min(self.types[code], left - later_items)), label=code)
            left -= items[code]
        return items

    @rule(data=st.data())
    def book(self, data) -> None:
        user, items = self.new_user(), self.wanted(data)
        typed = len(self.types) > 1
        row = self.conn.execute(
            BOOK,
            {
                "event": self.event,
                "user": user,
                "quantity": sum(items.values()),
                "codes": list(items) if typed else None,
                "quantities": list(items.values()) if typed else None,
            },
        ).one()
        if self.drawn:
            assert (row.outcome, row.booking_status) == ("ok", self.rule.book(row.booking_id, user, items))
            return
        assert (row.outcome, row.booking_status, row.waiting_position) == ("ok", LOBBY, None)
        assert row.item_types == (sorted(items) if typed else None)  # in the types' order
        self.lobby[user] = items
        if self.ranked is not None:
            self.ranked.append(user)  # a late arrival during the draw: the next rank
        elif not self.opened:
            self.early.append(user)

    @precondition(lambda self: self.users)
    @rule(data=st.data())
    def cancel(self, data) -> None:
        """Any user so far cancels: one in the lobby leaves it; one the draw (or a later book) booked cancels
        by the ordinary rule; one already gone is refused. The user is drawn among all of them, whose number
        the steps alone decide, not among those in the lobby: which are left there depends on the draw's
        random order, and Hypothesis must draw the same way when it replays a run."""
        user = f"user-{data.draw(st.integers(1, self.users), label='user')}"
        row = cancel_sql(self.conn, self.event, user)
        if user in self.lobby:
            assert row.booking_status == CANCELLED
            del self.lobby[user]
            if user in self.early:
                self.early.remove(user)
        elif user in self.rule.active:
            promoted = self.rule.cancel(self.rule.active[user])
            assert (row.booking_status, list(row.promoted_ids)) == (CANCELLED, promoted)
        else:
            assert row.outcome == "already_cancelled"

    @precondition(lambda self: not self.opened)
    @rule()
    def the_sale_opens(self) -> None:
        self.conn.execute(OPEN_NOW, {"event_id": self.event})
        self.opened = True

    @precondition(lambda self: self.opened and not self.drawn)
    @rule(slice_=st.integers(1, 4))
    def a_step_of_the_draw(self, slice_: int) -> None:
        step = self.conn.execute(STEP, {"event": self.event, "slice": slice_}).one()
        if self.ranked is None:
            self.ranked = list(self.conn.execute(RANKS, {"event": self.event}).scalars())
            early = len(self.early)
            assert sorted(self.ranked[:early]) == sorted(self.early)  # each early entry once, in some order
            assert self.ranked[early:] == [
                user for user in self.lobby if user not in self.early
            ]  # then in arrival order
            assert (step.ranked, step.seated) == (len(self.ranked), 0)
            return
        passing = self.ranked[self.seated : self.seated + slice_]
        self.seated += len(passing)
        booked = [user for user in passing if user in self.lobby]
        for user in booked:
            booking = self.conn.execute(BOOKING_OF, {"event": self.event, "user": user}).scalar_one()
            self.rule.book(booking, user, self.lobby.pop(user))
        self.drawn = self.seated == len(self.ranked)
        assert (step.seated, step.finished) == (len(booked), self.drawn)

    @invariant()
    def each_user_is_where_the_model_says(self) -> None:
        found = dict(self.conn.execute(STATUSES, {"event": self.event}).all())
        expected = {user: LOBBY for user in self.lobby} | {
            user: self.rule.status[booking] for user, booking in self.rule.active.items()
        }
        assert found == expected
        assert self.conn.execute(LOBBY_COUNT, {"event": self.event}).scalar_one() == len(self.lobby)

    @invariant()
    def flask_check_finds_nothing(self) -> None:
        report = audit.Report()
        audit.check_event(self.conn, self.conn.execute(select(events).where(events.c.id == self.event)).one(), report)
        assert report.problems == []


def test_the_lobby_and_its_draw_follow_the_model_step_by_step(engine):
    run_state_machine_as_test(
        lambda: LobbyRule(engine),
        settings=settings(
            max_examples=int(os.environ.get("LOBBY_MACHINE_EXAMPLES", 25)),
            stateful_step_count=int(os.environ.get("LOBBY_MACHINE_STEPS", 25)),
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
