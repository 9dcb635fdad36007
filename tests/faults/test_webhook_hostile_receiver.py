"""A hostile receiver (issue 23): a reply that streams without end, or trickles its headers or body one
byte at a time, must neither fill the dispatcher's memory nor hold a send past its deadline, nor send one
message twice at once, nor take more than its host's share of the senders."""

import time
import urllib.request

import pytest

from app.notifications.dispatcher import LEASE_MARGIN_S
from tests.helpers.api import ADMIN_TOKEN, WEBHOOK_SECRET_KEY
from tests.helpers.live_server import DispatcherProcess, free_port
from tests.helpers.receivers import Receiver, stream, trickled_body, trickled_headers
from tests.helpers.waiting import wait_until

MiB = 1024 * 1024
TRICKLE_EVERY_S = 0.2  # far below each test's timeout: no single read ever waits long enough to time out


def book(client, event, user):
    assert client.post("/api/book", json={"eventId": event["id"], "userId": user}).status_code == 201


def deliveries(client, admin_headers, webhook):
    path = f"/api/webhooks/{webhook['id']}/deliveries"
    return client.get(path, headers=admin_headers).get_json()["deliveries"]


def tried(client, admin_headers, webhook) -> dict | None:
    """The webhook's first delivery once a try of it is recorded."""
    listed = deliveries(client, admin_headers, webhook)
    return listed[0] if listed and (listed[0]["lastStatus"] or listed[0]["lastError"]) else None


def peak_rss_bytes(pid: int) -> int:
    """The process's resident set at its highest so far (VmHWM), from the kernel's own accounting."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_a_200_with_a_huge_body_is_not_read_into_memory_and_is_a_failed_try(
    database_url, client, admin_headers, register, new_event, hostile_receiver, scratch
):
    receiver = hostile_receiver(stream(200 * MiB))
    event = new_event()
    webhook = register(receiver, eventId=event["id"])
    port = free_port()
    settings = {
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "WEBHOOK_SECRET_KEY": WEBHOOK_SECRET_KEY,
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_RETRY_SCHEDULE": "60s",
        "WEBHOOK_DISPATCHER_PORT": str(port),
    }
    dispatcher = DispatcherProcess(database_url, scratch / "dispatcher.log", settings).start()
    try:
        wait_until(lambda: healthy(port), "the dispatcher is up")
        before = peak_rss_bytes(dispatcher.process.pid)
        book(client, event, "a")
        wait_until(lambda: tried(client, admin_headers, webhook), "the try is recorded")
        growth = peak_rss_bytes(dispatcher.process.pid) - before
    finally:
        dispatcher.stop()

    assert growth < 16 * MiB, f"the dispatcher grew by {growth / MiB:.0f} MiB"
    assert receiver.sends[0].bytes_sent < 200 * MiB  # it hung up
    delivery = tried(client, admin_headers, webhook)
    assert (delivery["state"], delivery["attempts"], delivery["lastStatus"]) == ("pending", 1, 200)
    assert "reply too large" in delivery["lastError"] and delivery["nextAttemptAt"]


@pytest.mark.parametrize("reply", [trickled_headers, trickled_body], ids=["headers", "body"])
def test_a_trickled_reply_ends_at_the_sends_deadline_as_a_failed_try_retried_on_schedule(
    client, admin_headers, register, new_event, hostile_receiver, dispatcher, reply
):
    receiver = hostile_receiver(reply(TRICKLE_EVERY_S))
    event = new_event()
    webhook = register(receiver, eventId=event["id"])
    dispatcher(webhook_timeout_s=1.0, webhook_retry_schedule=(1.0, 1.0))
    book(client, event, "a")

    wait_until(lambda: len(receiver.sends) >= 2, "the first try ends, and the second", deadline_s=15)

    first, second = receiver.sends[:2]
    assert first.ended_at - first.arrived_at < 1.5  # its deadline is 1 s
    assert second.arrived_at - first.ended_at > 0.7  # the schedule's 1 s, less its 20 % jitter
    delivery = tried(client, admin_headers, webhook)
    assert delivery["state"] == "pending" and "deadline" in delivery["lastError"]


def test_one_webhook_id_is_never_sent_twice_at_once_across_a_lease_expiry(
    register, client, new_event, hostile_receiver, dispatcher
):
    receiver = hostile_receiver(trickled_body(TRICKLE_EVERY_S))
    event = new_event()
    register(receiver, eventId=event["id"])
    for _ in range(2):
        dispatcher(webhook_timeout_s=1.0, webhook_retry_schedule=(0.2,) * 50)
    lease_s = 1.0 + LEASE_MARGIN_S
    book(client, event, "a")
    started = time.monotonic()

    wait_until(
        lambda: time.monotonic() - started > lease_s + 1 and len(receiver.arrivals) >= 2,
        "a lease has had time to run out, and the message was tried again",
        deadline_s=30,
    )

    [(webhook_id, most)] = receiver.most_at_once.items()
    assert most == 1, f"{webhook_id} was in flight {most} times at once"


def test_an_admin_retry_of_a_message_being_sent_waits_for_that_send(
    register, client, admin_headers, new_event, hostile_receiver, dispatcher
):
    receiver = hostile_receiver(trickled_body(TRICKLE_EVERY_S))
    event = new_event()
    webhook = register(receiver, eventId=event["id"])
    for _ in range(2):
        dispatcher(webhook_timeout_s=2.0, webhook_retry_schedule=(0.2,) * 50)
    book(client, event, "a")
    wait_until(lambda: receiver.arrivals, "the first send has begun", deadline_s=10)

    [delivery] = deliveries(client, admin_headers, webhook)
    retry = f"/api/webhooks/{webhook['id']}/deliveries/{delivery['messageId']}/retry"
    assert client.post(retry, json={}, headers=admin_headers).status_code == 202
    wait_until(lambda: receiver.sends, "the first send has ended", deadline_s=10)

    [(webhook_id, most)] = receiver.most_at_once.items()
    assert most == 1, f"{webhook_id} was in flight {most} times at once"


def test_four_webhooks_on_one_trickling_host_leave_senders_for_another_host(
    client, register, new_event, hostile_receiver, dispatcher
):
    trickling = hostile_receiver(trickled_body(TRICKLE_EVERY_S))
    slow_event, other_event = new_event(20), new_event(20)
    for _ in range(4):
        register(trickling, eventId=slow_event["id"])
    for n in range(8):  # eight messages each: enough for every sender a webhook may have
        book(client, slow_event, f"slow-{n}")
    healthy_receiver = Receiver(host="127.0.0.2").start()  # another host
    try:
        register(healthy_receiver, eventId=other_event["id"])
        dispatcher(webhook_timeout_s=5.0)
        wait_until(lambda: trickling.open_now() >= 8, "the trickling host holds senders")
        started = time.monotonic()
        for n in range(3):
            book(client, other_event, f"other-{n}")

        wait_until(lambda: len(healthy_receiver.delivered) == 3, "the other host gets its messages", deadline_s=10)

        assert time.monotonic() - started < 2.0  # not held until the trickling sends' 5 s deadline
    finally:
        healthy_receiver.stop()
