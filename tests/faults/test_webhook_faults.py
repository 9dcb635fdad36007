"""Webhook delivery through faults: a receiver that is down, a dispatcher killed mid-send."""

import threading

from werkzeug import Response

from tests.helpers.api import ADMIN_TOKEN, WEBHOOK_SECRET_KEY
from tests.helpers.live_server import DispatcherProcess
from tests.helpers.receivers import Receiver
from tests.helpers.waiting import wait_until


def book(client, event, user):
    assert client.post("/api/book", json={"eventId": event["id"], "userId": user}).status_code == 201


def test_a_receiver_down_for_a_while_then_back_gets_every_message(
    client, admin_headers, register, new_event, dispatcher
):
    event = new_event(10)
    receiver = Receiver()  # registered, but not listening yet
    webhook = register(receiver, eventId=event["id"])
    dispatcher(webhook_retry_schedule=(0.3,) * 20)
    for user in "abcde":
        book(client, event, user)
    log = lambda: client.get(f"/api/webhooks/{webhook['id']}/deliveries", headers=admin_headers).get_json()  # noqa
    wait_until(lambda: all(d["attempts"] >= 1 and d["lastError"] for d in log()["deliveries"]), "every try fails")

    receiver.start()
    try:
        wait_until(
            lambda: {d["state"] for d in log()["deliveries"]} == {"delivered"}, "all five arrive once it is back"
        )
    finally:
        receiver.stop()

    assert sorted(receiver.ids()) == sorted(d["messageId"] for d in log()["deliveries"])


def test_a_dispatcher_killed_mid_send_leaves_the_message_to_be_sent_again(
    database_url, client, register, receiver, new_event, scratch
):
    event = new_event()
    register(receiver, eventId=event["id"])
    hold = threading.Event()
    first = threading.Event()

    def answer(_request):
        if not first.is_set():
            first.set()
            hold.wait(10)  # the first try hangs until its dispatcher is dead
        return Response(status=204)

    receiver.answer = answer
    settings = {
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "WEBHOOK_SECRET_KEY": WEBHOOK_SECRET_KEY,
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_TIMEOUT_S": "2",
    }
    doomed = DispatcherProcess(database_url, scratch / "doomed.log", settings).start()
    book(client, event, "a")
    wait_until(first.is_set, "the first try reaches the receiver")
    doomed.kill()
    hold.set()
    successor = DispatcherProcess(database_url, scratch / "successor.log", settings).start()
    try:
        wait_until(lambda: len(receiver.arrivals) == 2, "the successor sends it again once the claim expires")
    finally:
        successor.stop()

    ids = [body["id"] for body in receiver.arrivals]
    assert len(ids) == 2 and len(set(ids)) == 1
