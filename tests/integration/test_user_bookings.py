"""GET /api/users/<userId>/bookings: one user's bookings at every event, newest first, by pages."""

import uuid

import pytest
from sqlalchemy import text

from app.booking import services
from tests.helpers.booking import book, cancel, open_event


def bookings_of(client, user_id, **params):
    return client.get(f"/api/users/{user_id}/bookings", query_string=params)


@pytest.fixture
def traveller(engine):
    """A user of their own with three bookings at three events: confirmed, waiting (2nd), cancelled."""
    user = f"traveller-{uuid.uuid4().hex[:8]}"
    events = [str(open_event(engine, 1).id) for _ in range(3)]
    book(engine, events[0], user)
    book(engine, events[1], "first-in-line")
    book(engine, events[1], "second")
    book(engine, events[1], user)
    book(engine, events[2], user)
    cancel(engine, events[2], user)
    return user, events


def test_lists_the_users_bookings_at_every_event_newest_first(client, traveller):
    user, events = traveller
    body = bookings_of(client, user).get_json()
    assert [(b["eventId"], b["status"], b["waitingPosition"]) for b in body["bookings"]] == [
        (events[2], "cancelled", None),
        (events[1], "waiting", 2),
        (events[0], "confirmed", None),
    ]
    assert body["nextAfter"] is None and {b["userId"] for b in body["bookings"]} == {user}


def test_pages_join_up_to_the_whole_list(client, traveller):
    user, _ = traveller
    whole = bookings_of(client, user).get_json()["bookings"]
    pages, params = [], {"limit": 2}
    while True:
        page = bookings_of(client, user, **params).get_json()
        pages.append(page["bookings"])
        if page["nextAfter"] is None:
            break
        params["after"] = page["nextAfter"]
    assert [len(page) for page in pages] == [2, 1] and [b for page in pages for b in page] == whole


def test_a_user_without_bookings_has_an_empty_list(client):
    assert bookings_of(client, "nobody-at-all").get_json() == {"bookings": [], "nextAfter": None}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"after": 0}, {"after": "x"}])
def test_out_of_range_paging_is_a_400(client, params):
    response = bookings_of(client, "anyone", **params)
    assert response.status_code == 400 and response.get_json()["code"] == "invalid_request"


def test_open_mode_lists_any_users_bookings_without_a_token(client, traveller):
    user, _ = traveller
    assert bookings_of(client, user).status_code == 200


def test_the_listing_uses_the_user_index(engine, traveller):
    user, _ = traveller
    explain = text("EXPLAIN " + services.USER_BOOKINGS.text)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # the test table is small enough to scan
        plan = "\n".join(conn.execute(explain, {"user_id": user, "before": services.NEWEST, "limit": 3}).scalars())
    assert "ix_bookings_user_bookings" in plan
