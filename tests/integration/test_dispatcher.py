"""The dispatcher against real receivers over HTTP, each delivery's signature verified by standardwebhooks."""

import threading
import time

from sqlalchemy import text
from werkzeug import Response

from tests.helpers.receivers import Receiver, statuses
from tests.helpers.waiting import wait_until


def book(client, event, user):
    return client.post("/api/book", json={"eventId": event["id"], "userId": user}).get_json()["booking"]


def deliveries(client, admin_headers, webhook, **params):
    path = f"/api/webhooks/{webhook['id']}/deliveries"
    return client.get(path, query_string=params, headers=admin_headers).get_json()["deliveries"]


def test_a_change_arrives_signed_with_the_booking_and_the_event(client, register, receiver, new_event, dispatcher):
    event = new_event(1, name="Gala")
    register(receiver, eventId=event["id"])
    dispatcher()
    booking = book(client, event, "alice")

    wait_until(lambda: receiver.delivered, "the message arrives")

    body = receiver.delivered[0]
    assert receiver.rejected == []
    assert list(body) == ["id", "type", "timestamp", "data"] and body["id"].startswith("msg_")
    assert (body["type"], body["timestamp"]) == ("booking.confirmed", booking["updatedAt"])
    assert body["data"]["booking"] == booking
    assert body["data"]["event"] == {
        **event,
        "availableTickets": 0,
        "bookedTickets": 1,
        "updatedAt": booking["updatedAt"],
        "ticketTypes": [{**event["ticketTypes"][0], "availableTickets": 0}],
    }


def test_the_booking_is_reported_as_each_change_left_it(client, register, receiver, new_event, dispatcher):
    event = new_event(1)
    register(receiver, eventId=event["id"])
    book(client, event, "a")
    waiting = book(client, event, "b")
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "a"})
    dispatcher()

    wait_until(lambda: len(receiver.delivered) == 4, "all four messages arrive")

    by_type = {body["type"]: body["data"]["booking"] for body in receiver.delivered}
    assert by_type["booking.waitlisted"] == waiting and by_type["booking.waitlisted"]["waitingPosition"] == 1
    assert (by_type["booking.promoted"]["status"], by_type["booking.cancelled"]["status"]) == ("confirmed", "cancelled")


def test_a_5xx_is_retried_with_the_same_id_until_delivered(
    client, admin_headers, register, receiver, new_event, dispatcher
):
    event = new_event()
    webhook = register(receiver, eventId=event["id"])
    receiver.answer = statuses(500, 503)
    dispatcher()
    book(client, event, "a")

    wait_until(
        lambda: deliveries(client, admin_headers, webhook)[0]["state"] == "delivered", "the third try is accepted"
    )

    assert len({body["id"] for body in receiver.arrivals}) == 1 and len(receiver.arrivals) == 3
    [delivery] = deliveries(client, admin_headers, webhook)
    assert (delivery["state"], delivery["attempts"], delivery["lastStatus"]) == ("delivered", 3, 204)
    assert delivery["deliveredAt"] and delivery["nextAttemptAt"] is None


def test_after_the_last_try_the_message_is_failed_and_a_retry_by_hand_sends_it(
    client, admin_headers, register, receiver, new_event, dispatcher
):
    event = new_event()
    webhook = register(receiver, eventId=event["id"])
    receiver.answer = statuses(then=500)
    dispatcher(webhook_retry_schedule=(0.1,))
    book(client, event, "a")
    wait_until(lambda: deliveries(client, admin_headers, webhook)[0]["state"] == "failed", "the message fails")
    [failed] = deliveries(client, admin_headers, webhook)
    assert (failed["attempts"], failed["lastStatus"], failed["lastError"]) == (2, 500, "HTTP 500")

    receiver.answer = statuses()
    path = f"/api/webhooks/{webhook['id']}/deliveries/{failed['messageId']}/retry"
    response = client.post(path, json={}, headers=admin_headers)

    assert response.status_code == 202 and response.get_json()["delivery"]["state"] == "pending"
    wait_until(lambda: receiver.delivered, "the retried message arrives")
    assert receiver.delivered[0]["id"] == failed["messageId"]


def test_410_disables_the_webhook(client, admin_headers, register, receiver, new_event, dispatcher):
    event = new_event()
    webhook = register(receiver, eventId=event["id"])
    receiver.answer = statuses(then=410)
    dispatcher()
    book(client, event, "a")

    wait_until(
        lambda: client.get(f"/api/webhooks/{webhook['id']}", headers=admin_headers).get_json()["webhook"]["disabled"],
        "the webhook is disabled",
    )
    book(client, event, "b")

    assert [d["state"] for d in deliveries(client, admin_headers, webhook)] == ["failed"]  # no message for b
    assert len(receiver.arrivals) == 1


def test_retry_after_is_honoured(engine, client, admin_headers, register, receiver, new_event, dispatcher):
    event = new_event()
    webhook = register(receiver, eventId=event["id"])
    receiver.answer = statuses(503, headers={"Retry-After": "120"})
    dispatcher()
    book(client, event, "a")

    wait_until(
        lambda: (
            deliveries(client, admin_headers, webhook)[0]["attempts"] == 1
            and deliveries(client, admin_headers, webhook)[0]["lastStatus"] == 503
        ),
        "the first try is answered",
    )

    with engine.connect() as conn:
        delay = conn.execute(
            text("SELECT extract(epoch FROM next_attempt_at - now()) FROM webhook_messages WHERE webhook_id = :id"),
            {"id": webhook["id"]},
        ).scalar_one()
    assert 100 < delay <= 120


def test_messages_about_one_booking_arrive_in_order(client, register, receiver, new_event, dispatcher):
    event = new_event(1)
    register(receiver, eventId=event["id"])
    receiver.answer = statuses(500)  # the first message (booked) must be retried before `cancelled` is sent
    book(client, event, "a")
    client.post("/api/cancel", json={"eventId": event["id"], "userId": "a"})
    dispatcher()

    wait_until(lambda: len(receiver.delivered) == 2, "both messages arrive")

    assert [body["type"] for body in receiver.arrivals] == [
        "booking.confirmed",
        "booking.confirmed",
        "booking.cancelled",
    ]


def test_a_hanging_receiver_times_out_and_does_not_delay_another(
    client, admin_headers, register, new_event, dispatcher
):
    event = new_event(10)
    hanging, healthy = Receiver().start(), Receiver().start()
    released = threading.Event()
    try:
        hanging.answer = lambda _request: released.wait(30) and Response(status=204)
        slow = register(hanging, eventId=event["id"])
        register(healthy, eventId=event["id"])
        dispatcher(webhook_timeout_s=3.0, webhook_per_receiver=2)
        started = time.monotonic()
        for user in "abcdef":
            book(client, event, user)

        wait_until(lambda: len(healthy.delivered) == 6, "the healthy receiver has all six", deadline_s=5)

        assert time.monotonic() - started < 2.5  # not held up behind the hanging receiver's 3 s timeouts
        wait_until(lambda: any(d["lastError"] for d in deliveries(client, admin_headers, slow)), "a send times out")
        assert "Timeout" in next(d["lastError"] for d in deliveries(client, admin_headers, slow) if d["lastError"])
    finally:
        released.set()
        hanging.stop()
        healthy.stop()


def test_two_dispatchers_send_each_message_once(client, register, receiver, new_event, dispatcher):
    event = new_event(100)
    register(receiver, eventId=event["id"])
    dispatcher()
    dispatcher()
    for n in range(40):
        book(client, event, f"user-{n}")

    wait_until(lambda: len(receiver.delivered) == 40, "all forty arrive")

    assert len(set(receiver.ids())) == 40 and len(receiver.arrivals) == 40


def test_a_destination_that_turns_private_at_send_time_is_refused(
    client, admin_headers, register, receiver, new_event, dispatcher
):
    event = new_event()
    webhook = register(receiver, eventId=event["id"])  # registered while private addresses were allowed
    dispatcher(webhook_allow_private=False, webhook_retry_schedule=())
    book(client, event, "a")

    wait_until(lambda: deliveries(client, admin_headers, webhook)[0]["state"] == "failed", "the send is refused")

    assert receiver.arrivals == []
    assert "127.0.0.1, which is not a public address" in deliveries(client, admin_headers, webhook)[0]["lastError"]


def test_delivered_messages_are_purged_after_the_retention(
    client, admin_headers, register, receiver, new_event, dispatcher, monkeypatch
):
    from app.notifications import dispatcher as dispatching

    monkeypatch.setattr(dispatching, "HOUSEKEEPING_EVERY_S", 0.0)
    event = new_event()
    webhook = register(receiver, eventId=event["id"])
    receiver.answer = statuses(then=500)
    dispatcher(webhook_retention_s=0, webhook_retry_schedule=(3600,))
    book(client, event, "a")
    wait_until(lambda: deliveries(client, admin_headers, webhook)[0]["lastStatus"] == 500, "the first try fails")
    receiver.answer = statuses()
    book(client, event, "b")

    wait_until(lambda: len(deliveries(client, admin_headers, webhook)) == 1, "the delivered message is purged")

    assert deliveries(client, admin_headers, webhook)[0]["state"] == "pending"  # the undelivered one stays


def test_a_failed_send_gives_only_its_own_message_another_try(
    client, admin_headers, register, receiver, new_event, dispatcher
):
    event = new_event(10)
    webhook = register(receiver, eventId=event["id"])
    for user in "abcd":
        book(client, event, user)
    receiver.answer = statuses(500)  # the first send of the batch fails
    dispatcher(webhook_per_receiver=1)  # one sender, so the four messages are one batch

    wait_until(
        lambda: [d["state"] for d in deliveries(client, admin_headers, webhook)] == ["delivered"] * 4,
        "all four are delivered",
    )

    assert [d["attempts"] for d in deliveries(client, admin_headers, webhook)] == [2, 1, 1, 1]
    assert len(receiver.arrivals) == 5 and sorted(receiver.ids()) == sorted(set(receiver.ids()))


def test_a_message_whose_body_cannot_be_rendered_fails_alone(
    engine, client, admin_headers, register, receiver, new_event, dispatcher
):
    event = new_event(10)
    webhook = register(receiver, eventId=event["id"])
    broken, whole = book(client, event, "a"), book(client, event, "b")
    with engine.begin() as conn:  # a snapshot no renderer can read
        conn.execute(
            text(
                'UPDATE webhook_messages SET booking = booking || \'{"created_at": "not a time"}\''
                " WHERE webhook_id = :id AND booking_id = :booking"
            ),
            {"id": webhook["id"], "booking": broken["id"]},
        )
    dispatcher(webhook_per_receiver=1, webhook_retry_schedule=(0.1,))

    wait_until(
        lambda: {d["state"] for d in deliveries(client, admin_headers, webhook)} == {"failed", "delivered"},
        "one fails, the other arrives",
    )

    failed = next(d for d in deliveries(client, admin_headers, webhook) if d["state"] == "failed")
    assert failed["attempts"] == 2 and failed["lastError"].startswith("crashed: ValueError")
    assert [body["data"]["booking"]["id"] for body in receiver.delivered] == [whole["id"]]


def test_a_slow_receivers_batch_stops_before_its_lease_runs_out_so_none_is_sent_twice(
    client, admin_headers, register, receiver, new_event, dispatcher
):
    event = new_event(30)
    webhook = register(receiver, eventId=event["id"])
    for n in range(20):
        book(client, event, f"user-{n}")

    def slow(_request):
        time.sleep(0.7)  # the receiver's pace: each answer takes 0.7 s (not an ordering)
        return Response(status=204)

    receiver.answer = slow
    # A lease of 4 x 1 s + 5 s: the first sender's batch of 16 would take 11 s; a second dispatcher would
    # claim what was still unsent once the lease ran out, and both would send it.
    dispatcher(webhook_timeout_s=1.0, webhook_per_receiver=1)
    dispatcher(webhook_timeout_s=1.0, webhook_per_receiver=1)

    wait_until(
        lambda: [d["state"] for d in deliveries(client, admin_headers, webhook)] == ["delivered"] * 20,
        "all twenty are delivered",
        deadline_s=30,
    )

    assert len(receiver.arrivals) == 20 and len(set(receiver.ids())) == 20
    assert {d["attempts"] for d in deliveries(client, admin_headers, webhook)} == {1}
