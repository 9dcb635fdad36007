"""The webhook admin API (contract v2, "Notifications"): registration, the secret, the delivery log."""

import base64

import pytest
from sqlalchemy import text

from tests.helpers.api import ADMIN_TOKEN

NIL = "00000000-0000-0000-0000-000000000000"


def test_registration_answers_201_with_the_webhook_and_its_secret(register, receiver, new_event):
    event = new_event()
    webhook = register(receiver, types=["booking.promoted"], eventId=event["id"])

    assert list(webhook) == ["id", "url", "types", "eventId", "disabled", "disabledReason", "createdAt", "secret"]
    assert (webhook["url"], webhook["types"], webhook["eventId"]) == (receiver.url, ["booking.promoted"], event["id"])
    assert webhook["disabled"] is False and webhook["createdAt"].endswith("Z")
    assert webhook["secret"].startswith("whsec_") and len(base64.b64decode(webhook["secret"][6:])) == 32


def test_a_webhook_without_types_or_event_gets_everything(register, receiver):
    webhook = register(receiver)

    assert (webhook["types"], webhook["eventId"]) == (None, None)


def test_the_secret_is_shown_only_at_registration(client, admin_headers, register, receiver):
    webhook = register(receiver)

    shown = client.get(f"/api/webhooks/{webhook['id']}", headers=admin_headers).get_json()["webhook"]

    assert "secret" not in shown
    assert shown == {key: value for key, value in webhook.items() if key != "secret"}


def test_a_database_dump_does_not_reveal_the_secret(engine, register, receiver):
    webhook = register(receiver)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM webhooks WHERE id = :id"), {"id": webhook["id"]}).one()

    dumped = repr(tuple(row)).encode() + bytes(row.secret_ciphertext)
    assert webhook["secret"].encode() not in dumped and webhook["secret"][6:].encode() not in dumped


def test_webhooks_are_listed_oldest_first_by_pages(client, admin_headers, register, receiver):
    made = [register(receiver)["id"] for _ in range(3)]
    listed, after = [], 0
    while after is not None:
        page = client.get("/api/webhooks", query_string={"after": after, "limit": 2}, headers=admin_headers).get_json()
        listed += [webhook["id"] for webhook in page["webhooks"]]
        after = page["nextAfter"]

    assert [webhook_id for webhook_id in listed if webhook_id in made] == made


def test_a_deleted_webhook_is_gone(client, admin_headers, register, receiver):
    webhook = register(receiver)

    assert client.delete(f"/api/webhooks/{webhook['id']}", headers=admin_headers).status_code == 204
    assert client.get(f"/api/webhooks/{webhook['id']}", headers=admin_headers).status_code == 404
    assert client.delete(f"/api/webhooks/{webhook['id']}", headers=admin_headers).status_code == 404


@pytest.mark.parametrize("path", ["/api/webhooks", f"/api/webhooks/{NIL}", f"/api/webhooks/{NIL}/deliveries"])
def test_the_webhook_routes_are_for_admins_only(client, path):
    response = client.get(path, headers={"Authorization": "Bearer wrong"})

    assert (response.status_code, response.get_json()["code"]) == (401, "unauthorized")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "http://127.0.0.1:1/hook", "types": ["booking.exploded"]}, "types"),
        ({"url": "http://127.0.0.1:1/hook", "types": []}, "types"),
        ({"url": "http://127.0.0.1:1/hook", "secret": "mine"}, "secret"),
    ],
    ids=["scheme", "not-a-url", "unknown-type", "no-types", "unknown-field"],
)
def test_an_invalid_registration_is_400_naming_the_field(client, admin_headers, body, field):
    response = client.post("/api/webhooks", json=body, headers=admin_headers)

    assert (response.status_code, response.get_json()["code"]) == (400, "invalid_request")
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/hook",
        "http://[::1]/hook",
        "https://192.168.1.1/hook",
        "http://user:pw@example.com/hook",
    ],
)
def test_a_private_destination_is_refused_unless_allowed(make_app, admin_headers, url):
    client = make_app(webhook_allow_private=False).test_client()

    response = client.post("/api/webhooks", json={"url": url}, headers=admin_headers)

    assert (response.status_code, response.get_json()["code"]) == (400, "invalid_request")
    assert list(response.get_json()["errors"]) == ["url"]


def test_a_refused_host_is_quoted_at_most_64_characters(make_app, admin_headers):
    client = make_app(webhook_allow_private=False).test_client()
    host = ".".join(["a" * 62] * 3) + ".invalid"  # 194 characters, in labels of at most 63

    response = client.post("/api/webhooks", json={"url": f"http://{host}/hook"}, headers=admin_headers)

    (message,) = response.get_json()["errors"]["url"]
    assert message.startswith(host[:64] + "\u2026") and host[:65] not in message


def test_a_webhook_for_an_unknown_event_is_404(client, admin_headers, receiver):
    response = client.post("/api/webhooks", json={"url": receiver.url, "eventId": NIL}, headers=admin_headers)

    assert (response.status_code, response.get_json()["code"]) == (404, "event_not_found")


def test_each_committed_change_becomes_one_pending_message(client, admin_headers, register, receiver, new_event):
    event = new_event(1)
    webhook = register(receiver, eventId=event["id"])
    for path, user in [("book", "a"), ("book", "b"), ("cancel", "a")]:
        client.post(f"/api/{path}", json={"eventId": event["id"], "userId": user})

    page = client.get(f"/api/webhooks/{webhook['id']}/deliveries", headers=admin_headers).get_json()

    assert [d["type"] for d in page["deliveries"]] == [
        "booking.confirmed",
        "booking.waitlisted",
        "booking.cancelled",
        "booking.promoted",
    ]
    assert {(d["state"], d["attempts"], d["lastStatus"]) for d in page["deliveries"]} == {("pending", 0, None)}
    assert all(d["messageId"].startswith("msg_") and d["nextAttemptAt"] for d in page["deliveries"])


def test_a_refused_change_writes_no_message(client, admin_headers, register, receiver, new_event):
    event = new_event(1)
    webhook = register(receiver, eventId=event["id"])
    client.post("/api/book", json={"eventId": event["id"], "userId": "a"})
    assert client.post("/api/book", json={"eventId": event["id"], "userId": "a"}).status_code == 409

    page = client.get(f"/api/webhooks/{webhook['id']}/deliveries", headers=admin_headers).get_json()

    assert len(page["deliveries"]) == 1


def test_a_rolled_back_change_writes_no_message(engine, client, admin_headers, register, receiver, new_event):
    event = new_event(1)
    webhook = register(receiver, eventId=event["id"])
    with engine.connect() as conn:
        conn.execute(text("SELECT book_ticket(:event, 'a', NULL)"), {"event": event["id"]})
        conn.rollback()

    page = client.get(f"/api/webhooks/{webhook['id']}/deliveries", headers=admin_headers).get_json()

    assert page["deliveries"] == []


def test_a_webhook_gets_only_its_types_and_its_event(client, admin_headers, register, receiver, new_event):
    event, other = new_event(1), new_event(1)
    webhook = register(receiver, eventId=event["id"], types=["booking.waitlisted"])
    for event_id in (event["id"], other["id"]):
        for user in ("a", "b"):
            client.post("/api/book", json={"eventId": event_id, "userId": user})

    page = client.get(f"/api/webhooks/{webhook['id']}/deliveries", headers=admin_headers).get_json()

    assert [d["type"] for d in page["deliveries"]] == ["booking.waitlisted"]


def test_deliveries_page_and_filter_by_state(client, admin_headers, register, receiver, new_event):
    event = new_event(5)
    webhook = register(receiver, eventId=event["id"])
    for user in "abc":
        client.post("/api/book", json={"eventId": event["id"], "userId": user})
    path = f"/api/webhooks/{webhook['id']}/deliveries"

    first = client.get(path, query_string={"limit": 2}, headers=admin_headers).get_json()
    rest = client.get(path, query_string={"after": first["nextAfter"]}, headers=admin_headers).get_json()
    failed = client.get(path, query_string={"state": "failed"}, headers=admin_headers).get_json()

    assert (len(first["deliveries"]), len(rest["deliveries"]), rest["nextAfter"]) == (2, 1, None)
    assert failed == {"deliveries": [], "nextAfter": None}


def test_retrying_an_unknown_message_is_404(client, admin_headers, register, receiver):
    webhook = register(receiver)
    for message_id in ("msg_" + "0" * 32, "nonsense"):
        response = client.post(
            f"/api/webhooks/{webhook['id']}/deliveries/{message_id}/retry", json={}, headers=admin_headers
        )

        assert (response.status_code, response.get_json()["code"]) == (404, "delivery_not_found")


@pytest.mark.parametrize("method, suffix", [("GET", ""), ("GET", "/deliveries"), ("POST", "/deliveries/msg_x/retry")])
def test_an_unknown_webhook_is_404(client, admin_headers, method, suffix):
    for webhook_id in (NIL, "not-a-uuid"):
        body = {} if method == "POST" else None
        response = client.open(f"/api/webhooks/{webhook_id}{suffix}", method=method, json=body, headers=admin_headers)

        assert (response.status_code, response.get_json()["code"]) == (404, "webhook_not_found")


def test_the_static_admin_token_is_accepted(client, receiver):
    response = client.post(
        "/api/webhooks", json={"url": receiver.url}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )

    assert response.status_code == 201
    client.delete(
        f"/api/webhooks/{response.get_json()['webhook']['id']}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )


def test_a_partial_cancel_is_made_and_sends_no_message(client, admin_headers, register, receiver, new_event):
    event = new_event(2)
    webhook = register(receiver, eventId=event["id"])
    client.post("/api/book", json={"eventId": event["id"], "userId": "a", "quantity": 2})

    response = client.post("/api/cancel", json={"eventId": event["id"], "userId": "a", "quantity": 1})

    assert response.status_code == 200 and response.get_json()["booking"]["quantity"] == 1
    page = client.get(f"/api/webhooks/{webhook['id']}/deliveries", headers=admin_headers).get_json()
    assert [d["type"] for d in page["deliveries"]] == ["booking.confirmed"]


def test_a_waitlisted_message_tells_the_tickets_ahead(engine, client, register, receiver, new_event):
    event = new_event(3)
    webhook = register(receiver, eventId=event["id"])
    for user, quantity in [("a", 3), ("b", 3), ("c", 2)]:
        client.post("/api/book", json={"eventId": event["id"], "userId": user, "quantity": quantity})

    with engine.connect() as conn:
        snapshots = (
            conn.execute(
                text(
                    "SELECT booking FROM webhook_messages WHERE webhook_id = :w AND type = 'booking.waitlisted' ORDER BY ledger_seq"
                ),
                {"w": webhook["id"]},
            )
            .scalars()
            .all()
        )
    assert [(s["user_id"], s["waiting_position"], s["tickets_ahead"]) for s in snapshots] == [("b", 1, 0), ("c", 2, 3)]
