"""The database's leader goes away mid-load, by a crash or on purpose, and the service rides through.

A hot event, 64 clients booking and cancelling through the balancer (cluster/tests/load.py), every other
user with an Idempotency-Key. Once a third of them are done, either the leader's PostgreSQL is SIGKILLed
(Patroni promotes the synchronous standby) or `patronictl switchover` hands the leadership over, PgBouncer
paused meanwhile (Cluster.switchover). Then,
read from the new leader: every booking a client was shown is there, once; each user has one row;
`flask check` passes; every change committed sent its webhook; and the old leader is back, a replica,
without anyone's help.
"""

from __future__ import annotations

import time
from uuid import UUID

import pytest
from sqlalchemy import text

from app.notifications.model import message_key
from cluster.tests.conftest import assert_invariants, report
from cluster.tests.load import Load, Retry, assert_every_journey_stored_once, shown_bookings, stored_bookings
from tests.helpers.receivers import Receiver

LOAD_TICKETS, LOAD_USERS, CLIENT_THREADS = 200, 600, 64
# A client that keeps trying for about half a minute, honouring Retry-After's one second at most.
RETRY = Retry(attempts=40, backoff_s=0.1, cap_s=1.0)
FIRST_WRITE_TARGET_S = 30
REJOIN_DEADLINE_S = 120
DELIVERY_DEADLINE_S = 60
MAX_REFUSED_IN_SWITCHOVER = 0.01

OUTBOX = text("SELECT message_id FROM webhook_messages WHERE webhook_id = :webhook_id")


def keyed(user: int) -> bool:
    return user % 2 == 0


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def hot_event(admin, receiver) -> tuple[str, str]:
    """A hot event whose changes go to the receiver by webhook; (event id, webhook id)."""
    event_id = admin.initialize(LOAD_TICKETS)
    webhook = admin.register_webhook(receiver.url, event_id)
    receiver.secret = webhook["secret"]
    return event_id, webhook["id"]


def wait_for(condition, deadline_s: float, what: str) -> float:
    """Poll until `condition()` holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline_s, f"timed out after {deadline_s}s waiting until {what}"
        time.sleep(0.2)  # polling interval
    return time.monotonic() - started


def rejoined(cluster, member) -> bool:
    """The whole cluster healthy again, `member` among the replicas."""
    return cluster.patroni.healthy() and cluster.patroni.leader() is not member


def assert_every_message_delivered(db, receiver: Receiver, webhook_id: str, load: Load) -> float:
    """Every message the committed changes queued for the webhook arrived, one for each booking shown;
    the seconds it took from now."""
    with db.connect() as conn:
        queued = {message_key(row.message_id) for row in conn.execute(OUTBOX, {"webhook_id": UUID(webhook_id)})}
    seconds = wait_for(lambda: queued <= set(receiver.ids()), DELIVERY_DEADLINE_S, "every message is delivered")
    booked = {body["data"]["booking"]["id"] for body in list(receiver.delivered)}
    assert {booking["id"] for booking in shown_bookings(load.journeys)} <= booked
    assert receiver.rejected == []
    return seconds


def assert_consistent(cluster, db, event_id: str, load: Load) -> dict:
    stored = stored_bookings(db, event_id)
    assert_every_journey_stored_once(load, stored)
    assert_invariants(db, event_id)
    check = cluster.check()
    assert check.returncode == 0, check.stdout + check.stderr
    return stored


def test_killing_the_leaders_postgres_mid_load_loses_no_acknowledged_booking(
    cluster, user_api, db, receiver, hot_event
):
    event_id, webhook_id = hot_event
    old = cluster.patroni.leader()
    load = Load(user_api, event_id, LOAD_USERS, CLIENT_THREADS, RETRY, keyed)
    killed_at = []

    def kill() -> None:
        killed_at.append(time.monotonic())
        old.kill_postmaster()

    load.run(during=kill)
    first_write = load.first_success_after(killed_at[0]) - killed_at[0]
    new = cluster.patroni.leader()
    wait_for(lambda: rejoined(cluster, old), REJOIN_DEADLINE_S, f"{old.name} is back as a replica")
    rejoin = time.monotonic() - killed_at[0]  # at most: polled from the end of the load on

    assert new is not None and new is not old, "the synchronous standby took over"
    assert first_write <= FIRST_WRITE_TARGET_S
    stored = assert_consistent(cluster, db, event_id, load)
    delivery = assert_every_message_delivered(db, receiver, webhook_id, load)
    acknowledged = len({booking["id"] for booking in shown_bookings(load.journeys)})
    report(
        f"leader killed: {old.name}'s postmaster SIGKILLed a third of the way into {len(load.attempts)} requests "
        f"from {CLIENT_THREADS} clients; {new.name} took over; first successful write {first_write:.1f}s after "
        f"the kill; {len(load.unanswered)} requests refused or unanswered (retried); {acknowledged} bookings "
        f"acknowledged, all {acknowledged} present, {len(stored)} rows for {LOAD_USERS} users; webhooks all "
        f"delivered {delivery:.1f}s after the checks; {old.name} back as a replica by {rejoin:.1f}s after the kill"
    )


def test_a_planned_switchover_under_load_loses_nothing_and_refuses_almost_nothing(
    cluster, user_api, db, receiver, hot_event
):
    event_id, webhook_id = hot_event
    old, candidate = cluster.patroni.leader(), cluster.patroni.sync_standby()
    load = Load(user_api, event_id, LOAD_USERS, CLIENT_THREADS, RETRY, keyed)
    switched_at = []

    def switch() -> None:
        switched_at.append(time.monotonic())
        cluster.switchover(candidate)

    load.run(during=switch)
    refused = len(load.unanswered) / len(load.attempts)
    wait_for(lambda: rejoined(cluster, old), REJOIN_DEADLINE_S, f"{old.name} is back as a replica")

    assert cluster.patroni.leader() is candidate
    assert_consistent(cluster, db, event_id, load)
    assert_every_message_delivered(db, receiver, webhook_id, load)
    assert refused < MAX_REFUSED_IN_SWITCHOVER, load.unanswered
    first_write = load.first_success_after(switched_at[0]) - switched_at[0]
    report(
        f"switchover: {old.name} -> {candidate.name} a third of the way into {len(load.attempts)} requests from "
        f"{CLIENT_THREADS} clients; {len(load.unanswered)} refused or unanswered ({refused:.2%}); writes waited in "
        f"PgBouncer meanwhile (the first sent after the start succeeded {first_write:.1f}s after it); "
        f"{len({booking['id'] for booking in shown_bookings(load.journeys)})} bookings acknowledged, all present"
    )
