"""A fair sale opening (issue 27) on an event of several ticket types (issue 26): a lobby entry keeps its items,
checked as at book time, and the draw books the entries in rank order by the FIFO rule with types."""

from __future__ import annotations

from sqlalchemy import text

from app.booking.domain import CONFIRMED
from app.operations.audit import Replay
from tests.helpers.api import assert_problem, event_now
from tests.helpers.database import problems_after
from tests.helpers.lobby import draw, drawn, later, open_now
from tests.helpers.ticket_types import by_code, items, types

# 6 places, at most 2 of them for children: enough for some of the lobby, not for all of it.
TYPES = types(("adult", 6), ("child", 2, 2))
LOBBY = {
    "family": {"adult": 2, "child": 2},
    "kid": {"child": 1},
    "group": {"adult": 3},
    "single": {"adult": 1},
    "pair": {"adult": 1, "child": 1},
}
ITEM_TYPES = text("SELECT user_id, item_types, item_quantities FROM bookings WHERE event_id = :event ORDER BY user_id")


def join(client, event: dict, user: str, **body):
    return client.post("/api/book", json={"eventId": event["id"], "userId": user, **body})


def rule_with_types(ranked: list[str]) -> tuple[dict[str, str], Replay]:
    """What the FIFO rule with types makes of the lobby booked in rank order: each user's status, and the model."""
    model = Replay(6, {"adult": 6, "child": 2})
    return {user: model.book(user, user, LOBBY[user]) for user in ranked}, model


def test_a_lobby_of_several_types_is_drawn_and_seated_by_the_rule_with_types(new_event, client, engine):
    event = new_event(6, salesOpenAt=later(), ticketTypes=TYPES)
    for user, wanted in LOBBY.items():
        entry = join(client, event, user, items=items(**wanted)).get_json()["booking"]
        assert (entry["status"], entry["items"]) == ("lobby", items(**wanted))
    lobby = event_now(client, event)
    assert [(t["availableTickets"], t["waitingTickets"]) for t in lobby["ticketTypes"]] == [(6, 0), (2, 0)]
    open_now(engine, event["id"])

    draw(engine, event["id"])

    seated = drawn(engine, event["id"])
    expected, model = rule_with_types([user for user, _, _ in seated])
    assert {user: status for user, status, _ in seated} == expected
    assert CONFIRMED in expected.values()
    now = event_now(client, event)
    room = model.type_room()
    assert {code: (t["availableTickets"], t["waitingTickets"]) for code, t in by_code(now).items()} == {
        code: (room[code], sum(model.items[w].get(code, 0) for w in model.queue)) for code in room
    }
    assert (now["availableTickets"], now["waitingListCount"], now["lobbyCount"]) == (
        model.available,
        len(model.queue),
        0,
    )
    assert problems_after(engine, event["id"], "SELECT 1") == []


def test_lobby_items_are_checked_as_at_book_time(new_event, client):
    event = new_event(6, salesOpenAt=later(), ticketTypes=TYPES)

    for body in ({"quantity": 1}, {"items": items(vip=1)}, {"items": items(child=3)}, {"items": items(adult=11)}):
        assert "items" in assert_problem(join(client, event, "ann", **body), 400, "invalid_request")["errors"]
    assert event_now(client, event)["lobbyCount"] == 0


def test_a_lobby_entry_of_a_one_type_event_stores_no_items_like_any_booking(new_event, client, engine):
    one_type = new_event(6, salesOpenAt=later())
    several = new_event(6, salesOpenAt=later(), ticketTypes=TYPES)
    join(client, one_type, "ann", quantity=2)
    join(client, several, "ann", items=items(adult=2))

    with engine.connect() as conn:
        assert [tuple(row) for row in conn.execute(ITEM_TYPES, {"event": one_type["id"]})] == [("ann", None, None)]
        assert [tuple(row) for row in conn.execute(ITEM_TYPES, {"event": several["id"]})] == [("ann", ["adult"], [2])]


def test_the_draw_stops_at_an_entry_it_cannot_book_rather_than_pass_it_over(new_event, client, engine):
    event = new_event(6, salesOpenAt=later(), ticketTypes=TYPES)
    join(client, event, "ann", items=items(adult=1))
    try:
        retype_entries(engine, event, "vip")  # an entry whose type is gone: what no request can make
        open_now(engine, event["id"])

        draw(engine, event["id"])

        assert [(user, status) for user, status, _ in drawn(engine, event["id"])] == []
        status = event_now(client, event)
        assert (status["lobbyCount"], status["drawnAt"]) == (1, None)
    finally:
        retype_entries(engine, event, "adult")  # as the ledger has it, for `flask check` of the shared database


def retype_entries(engine, event: dict, code: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE bookings SET item_types = ARRAY[:code] WHERE event_id = :event"),
            {"event": event["id"], "code": code},
        )
