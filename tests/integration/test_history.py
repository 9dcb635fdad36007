"""GET /api/events/<eventId>/history: the ledger of one event, a page at a time, for admins."""

import pytest

from tests.helpers.api import NIL_UUID, assert_problem


def history(client, event_id, headers, **params):
    return client.get(f"/api/events/{event_id}/history", query_string=params, headers=headers)


@pytest.fixture
def busy_event(client, new_event):
    """One ticket, five changes: a booked, b waitlisted, a cancelled and b promoted, a waitlisted.

    `requestIds` are the X-Request-IDs that the four requests were answered with."""
    event = new_event(1)
    replies = [
        client.post(f"/api/{path}", json={"eventId": event["id"], "userId": user})
        for path, user in [("book", "a"), ("book", "b"), ("cancel", "a"), ("book", "a")]
    ]
    return event | {"requestIds": [reply.headers["X-Request-ID"] for reply in replies]}


def test_history_lists_every_change_oldest_first(client, admin_headers, busy_event):
    body = history(client, busy_event["id"], admin_headers).get_json()

    r0, r1, r2, r3 = busy_event["requestIds"]
    assert [(e["kind"], e["userId"], e["requestId"]) for e in body["entries"]] == [
        ("booked", "a", r0),
        ("waitlisted", "b", r1),
        ("cancelled", "a", r2),
        ("promoted", "b", r2),
        ("waitlisted", "a", r3),
    ]
    assert body["nextAfter"] is None
    assert body["entries"][1]["bookingId"] == body["entries"][3]["bookingId"]


def test_history_pages_join_up_to_the_whole_history(client, admin_headers, busy_event):
    whole = history(client, busy_event["id"], admin_headers).get_json()["entries"]
    pages, after = [], 0
    while after is not None:
        page = history(client, busy_event["id"], admin_headers, after=after, limit=2).get_json()
        pages.append(page["entries"])
        after = page["nextAfter"]

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [entry for page in pages for entry in page] == whole


def test_history_of_an_event_without_bookings_is_empty(client, admin_headers, new_event):
    assert history(client, new_event(1)["id"], admin_headers).get_json() == {"entries": [], "nextAfter": None}


@pytest.mark.parametrize("event_id", [NIL_UUID, "not-a-uuid"])
def test_history_of_an_unknown_event_is_event_not_found(client, admin_headers, event_id):
    assert_problem(history(client, event_id, admin_headers), 404, "event_not_found")


def test_history_is_for_admins_only(client, busy_event):
    assert_problem(history(client, busy_event["id"], {"Authorization": "Bearer nope"}), 401, "unauthorized")


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": -1}, "after"),
        ({"after": "x"}, "after"),
        ({"after": 2**63}, "after"),
    ],
)
def test_history_with_bad_paging_parameters_is_a_400(client, admin_headers, busy_event, params, field):
    body = assert_problem(history(client, busy_event["id"], admin_headers, **params), 400, "invalid_request")
    assert list(body["errors"]) == [field]
