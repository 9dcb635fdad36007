"""The dispatcher: claims due messages, sends them signed, records the outcomes.

Each pass (`loop_once`, the `webhook-dispatch` unit of the background process, app/workers/) claims work
(app/notifications/store.py: FOR UPDATE SKIP LOCKED, with a lease) and hands it to a pool of sender
threads, a batch to each. Each webhook may have at most `per_receiver` sends in flight in this process
(a sender sends its batch one message after another), and each host (the URL's host name, whatever
webhooks point at it) at most `per_host`; a pass claims for a webhook only for its free senders: a
receiver that hangs holds its own senders until the send's deadline, and the other hosts' messages go
on. A sender that finishes sets `wake`: the next pass may claim again at once.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import structlog
from sqlalchemy import Engine, Row

from app.config import Config
from app.database.engine import DATABASE_ERRORS
from app.notifications import messages, metrics, store
from app.notifications.model import DELIVERED, FAILED, message_key
from app.notifications.secrets import SecretBox
from app.notifications.sender import Destination, Outcome, Sender

JITTER = 0.2  # each delay is drawn from ±20% of the schedule's, so that receivers back up unevenly
MAX_RETRY_AFTER_S = 24 * 3600  # a receiver's Retry-After is honoured up to a day
# A claim's lease outlasts any send it starts, so that no other claim can send the message while a send of
# it is still open (one webhook-id is never in flight twice at once): every send ends by its deadline
# (WEBHOOK_TIMEOUT_S, connect to the reply's last byte), cut to end RECORD_MARGIN_S before the lease does.
LEASE_MARGIN_S = 5.0  # the lease is the send's deadline and this
RECORD_MARGIN_S = 1.0  # between the end of the last send and the end of the lease: time to record
RECORD_WAITS_S = (0.0, 0.5, 2.0)  # before each try of a batch's record
# Messages one sender takes per claim and sends one after another: one claim and one record statement
# (each a commit) serve them all, where one per message made the database the dispatcher's limit.
BATCH = 16
HOUSEKEEPING_EVERY_S = 10.0
HEARTBEAT_EVERY_S = 1.0
PURGE_BATCH = 1000
GONE = 410

log = structlog.get_logger("app.notifications.dispatcher")


def host(webhook: Row) -> str:
    """The host whose share of the senders a webhook's sends count against: its URL's host name."""
    return urlsplit(webhook.url).hostname or ""


def pool_size(config: Config) -> int:
    """The connections a dispatcher needs at once: its loop's, and the senders' records."""
    return config.webhook_concurrency + 2


class RetryPolicy:
    def __init__(self, schedule: tuple[int, ...]) -> None:
        self.schedule = schedule

    def delay_s(self, attempts: int, retry_after_s: float | None) -> float | None:
        """Seconds until the next try after `attempts` tries; None once the schedule is spent."""
        if attempts > len(self.schedule):
            return None
        delay = self.schedule[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
        return delay


class Dispatcher:
    def __init__(self, engine: Engine, config: Config, stop: threading.Event, sender: Sender | None = None) -> None:
        self.engine, self.config = engine, config
        # Every statement here is a transaction of its own: in autocommit it costs one round trip, not
        # three (BEGIN, the statement, COMMIT). An outcome of two statements (410) needs no atomicity:
        # if the second is lost, the next message's 410 disables the webhook.
        self._database = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.box = SecretBox(config.webhook_secret_keys)
        self.sender = sender or Sender(config.webhook_timeout_s, config.webhook_allow_private)
        self.policy = RetryPolicy(config.webhook_retry_schedule)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        # A sender starts another message of its batch only while the lease still covers a whole send
        # and its record; and cuts any send's deadline to the lease's end less the record's margin.
        self.send_budget_s = config.webhook_timeout_s + RECORD_MARGIN_S
        self.lease_s = config.webhook_timeout_s + LEASE_MARGIN_S
        self._pool = ThreadPoolExecutor(config.webhook_concurrency, thread_name_prefix="webhook-send")
        self._in_flight: Counter = Counter()  # sends in flight per webhook
        self._in_flight_to: Counter = Counter()  # and per host
        self._lock, self.wake = threading.Lock(), threading.Event()
        self._last_housekeeping = self._last_heartbeat = 0.0
        self._stop = stop  # senders give back what they have not sent once it is set
        log.info("dispatcher_started", name=self.name)

    def close(self) -> None:
        """Once the passes have ended: let the sends in flight finish, and say goodbye."""
        self._pool.shutdown(wait=True)
        self.sender.close()
        self._quietly(lambda conn: store.forget_dispatcher(conn, self.name))
        log.info("dispatcher_stopped", name=self.name)

    def loop_once(self) -> bool:
        """Claim what is due for each webhook with a free slot and start sending it. No backlog to tell:
        a sender that finishes sets `wake`. A database error propagates (app/workers/loop.py logs it)."""
        with self._database.connect() as conn:
            self._heartbeat(conn)
            due = store.due_webhooks(conn)
        # A random order each loop: the webhooks first in a fixed one would take every free send
        # slot, and a crowd of failing receivers could starve a healthy webhook behind them.
        random.shuffle(due)
        for webhook in due:
            self._claim_for(webhook)
        self._housekeeping()
        metrics.LAST_LOOP.set_to_current_time()
        return False

    def _heartbeat(self, conn) -> None:
        """Tell the database this dispatcher lives, once a second at most: a commit per loop would cost a flush."""
        if time.monotonic() - self._last_heartbeat >= HEARTBEAT_EVERY_S:
            store.heartbeat(conn, self.name)
            self._last_heartbeat = time.monotonic()

    def _claim_for(self, webhook: Row) -> None:
        """Claim up to BATCH messages for each free sender of the webhook, dealt out in turn (oldest first)."""
        senders = self._free_slots(webhook)
        if senders == 0:
            return
        claimed_at = time.monotonic()  # before the claim: the lease is counted from no earlier
        with self._database.connect() as conn:
            claimed = store.claim(conn, webhook.id, senders * BATCH, self.lease_s)
        for sender in range(min(senders, len(claimed))):
            self._start(webhook, claimed[sender::senders], claimed_at)

    def _free_slots(self, webhook: Row) -> int:
        with self._lock:
            total_free = self.config.webhook_concurrency - sum(self._in_flight.values())
            webhook_free = self.config.webhook_per_receiver - self._in_flight[webhook.id]
            host_free = self.config.webhook_per_host - self._in_flight_to[host(webhook)]
            return max(0, min(webhook_free, host_free, total_free))

    def _start(self, webhook: Row, batch: list[Row], claimed_at: float) -> None:
        with self._lock:
            self._in_flight[webhook.id] += 1
            self._in_flight_to[host(webhook)] += 1
        metrics.IN_FLIGHT.inc()
        self._pool.submit(self._deliver, webhook, batch, claimed_at)

    def _deliver(self, webhook: Row, batch: list[Row], claimed_at: float) -> None:
        """Send a batch one message after another, then record every outcome in one statement."""
        try:
            sent = self._send_in_turn(webhook, batch, claimed_at)
            self._record(webhook, sent, batch[len(sent) :])
        except Exception:  # a thread of the pool has nobody to tell: log it; the lease brings the messages back
            log.exception("webhook_send_crashed", webhook_id=str(webhook.id), seq=batch[0].seq)
        finally:
            with self._lock:
                self._in_flight[webhook.id] -= 1
                self._in_flight_to[host(webhook)] -= 1
            metrics.IN_FLIGHT.dec()
            self.wake.set()  # a slot is free: the loop may claim again at once

    def _send_in_turn(self, webhook: Row, batch: list[Row], claimed_at: float) -> list[tuple[Row, Outcome]]:
        """The messages sent, in order, until the receiver answers 410, the dispatcher stops, or what is
        left of the lease would not cover one more send; the rest wait for the next claim."""
        secret, sent = self.box.open(webhook.secret_ciphertext), []
        destination = self.sender.destination(webhook.url)  # resolved and checked once for the batch
        send_by = claimed_at + self.lease_s - RECORD_MARGIN_S
        for message in batch:
            if not self._may_send(claimed_at, sent):
                break
            deadline = min(time.monotonic() + self.config.webhook_timeout_s, send_by)
            sent.append((message, self._send(destination, secret, message, deadline)))
        return sent

    def _send(self, destination: Destination, secret: str, message: Row, deadline: float) -> Outcome:
        try:
            body = messages.body(message.message_id, message.type, message.occurred_at, message.booking, message.event)
            return self.sender.send(destination, secret, message_key(message.message_id), body, deadline)
        except Exception as error:  # noqa: BLE001 (a bug, say a body that cannot be rendered: this message is
            # retried and in the end failed like any other failure, and the batch's others go on)
            log.exception("webhook_send_crashed", message=message_key(message.message_id))
            return Outcome(None, f"crashed: {type(error).__name__}: {error}"[:500])

    def _may_send(self, claimed_at: float, sent: list[tuple[Row, Outcome]]) -> bool:
        if self._stop.is_set() or (sent and sent[-1][1].status == GONE):
            return False
        lease_left_s = self.lease_s - (time.monotonic() - claimed_at)
        # The first is sent whatever the claim took: its deadline is cut to the lease.
        return not sent or lease_left_s > self.send_budget_s

    def _record(self, webhook: Row, sent: list[tuple[Row, Outcome]], released: list[Row]) -> None:
        """Record the batch, trying again while the database is away: a delivered message left to its lease
        would be sent again (a second try of the same record changes nothing: `attempts` guards each row)."""
        recorded = [self._outcome(webhook, message, outcome) for message, outcome in sent]
        recorded += [store.Recorded(message, store.RELEASED) for message in released]
        gone = bool(sent) and sent[-1][1].status == GONE
        for wait_s in RECORD_WAITS_S:
            time.sleep(wait_s)  # a back-off between tries, not an ordering
            if self._quietly(lambda conn: self._write(conn, webhook, recorded, gone)):
                return

    @staticmethod
    def _write(conn, webhook: Row, recorded: list[store.Recorded], gone: bool) -> None:
        store.record_outcomes(conn, recorded)
        if gone:
            store.disable_webhook(conn, webhook.id, "the receiver answered 410 Gone")

    def _outcome(self, webhook: Row, message: Row, outcome: Outcome) -> store.Recorded:
        """What to record of one send (logged and counted here)."""
        described = dict(
            webhook_id=str(webhook.id),
            message=message_key(message.message_id),
            attempts=message.attempts,
            status=outcome.status,
            error=outcome.error,
        )
        if outcome.delivered:
            metrics.DELIVERED.inc()
            log.info("webhook_delivered", **described)
            return store.Recorded(message, DELIVERED, outcome.status)
        if outcome.status == GONE:
            metrics.FAILED.inc()
            log.warning("webhook_disabled", **described)
            return store.Recorded(message, FAILED, GONE, "410 Gone: the webhook was disabled")
        return self._failure(message, outcome, described)

    def _failure(self, message: Row, outcome: Outcome, described: dict) -> store.Recorded:
        delay_s = self.policy.delay_s(message.attempts, outcome.retry_after_s)
        error = outcome.error or f"HTTP {outcome.status}"
        if delay_s is None:
            metrics.FAILED.inc()
            log.warning("webhook_failed", **described)
            return store.Recorded(message, FAILED, outcome.status, error)
        metrics.RETRIED.inc()
        log.info("webhook_retry_scheduled", delay_s=round(delay_s, 3), **described)
        return store.Recorded(message, store.RETRY, outcome.status, error, delay_s)

    def _housekeeping(self) -> None:
        """Now and then: purge delivered messages past their retention, and measure the lag."""
        if time.monotonic() - self._last_housekeeping < HOUSEKEEPING_EVERY_S:
            return
        self._last_housekeeping = time.monotonic()
        while self._purge_batch() == PURGE_BATCH:
            pass
        with self._database.connect() as conn:
            metrics.LAG.set(store.oldest_pending_age_s(conn))

    def _purge_batch(self) -> int:
        with self._database.connect() as conn:
            return store.purge_delivered(conn, self.config.webhook_retention_s, PURGE_BATCH)

    def _quietly(self, work) -> bool:
        """`work(conn)`, and whether it was done; a database error is logged: the lease brings the messages back."""
        try:
            with self._database.connect() as conn:
                work(conn)
        except DATABASE_ERRORS as error:
            log.warning("dispatcher_database_error", error=str(error).splitlines()[0])
            return False
        return True
