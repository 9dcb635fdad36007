"""A booking load through the balancer, for the tests that break something while it runs.

Every simulated user books (and one in four then cancels) from an address of its own, on one hot event.
A client that gets no answer, or a 502/503/504, retries the same request as a real client would, with
its Idempotency-Key if it sent one. Every attempt is recorded (when sent, when answered, its status),
so that a test can tell what was refused while the fault lasted, and when writes succeeded again.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from cluster.client import Reply

BOOKINGS = text("SELECT id::text, user_id, status FROM bookings WHERE event_id = :event_id")
STALL_TIMEOUT_S = 120


@dataclass(frozen=True)
class Retry:
    """A client's patience: `attempts` tries, waiting `backoff_s` doubled each time, at most `cap_s`."""

    attempts: int
    backoff_s: float = 0.1
    cap_s: float = 60.0

    def pause(self, attempt: int) -> float:
        return min(self.backoff_s * 2**attempt, self.cap_s)


@dataclass(frozen=True)
class Attempt:
    """One request: booking or cancel, when sent and answered (monotonic), and its status (None: no answer)."""

    action: str
    sent: float
    answered: float
    status: int | None

    @property
    def ambiguous(self) -> bool:
        return self.status in (None, 502, 503, 504)


@dataclass
class Journey:
    """What one user did and was finally told."""

    user: str
    cancels: bool
    keyed: bool
    booked: Reply | None = None
    cancelled: Reply | None = None


class Load:
    """The users' journeys over a pool of client threads; `during()` runs once a third of them are done."""

    def __init__(
        self, api_for, event_id: str, users: int, threads: int, retry: Retry, keyed: Callable[[int], bool]
    ) -> None:
        self.api_for, self.event_id, self.threads, self.retry = api_for, event_id, threads, retry
        self.journeys = [Journey(f"load-{i:04d}", cancels=i % 4 == 0, keyed=keyed(i)) for i in range(users)]
        self.attempts: list[Attempt] = []
        self.third_done = threading.Event()
        self._finished = 0
        self._lock = threading.Lock()

    def run(self, during) -> None:
        """Run every journey; call `during()` on this thread once a third are done."""
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            futures = [pool.submit(self._travel, journey) for journey in self.journeys]
            assert self.third_done.wait(timeout=STALL_TIMEOUT_S), "the load stalled before the fault"
            during()
            for future in futures:
                future.result()

    @property
    def unanswered(self) -> list[Attempt]:
        """The attempts that told their client nothing (it retried)."""
        return [attempt for attempt in self.attempts if attempt.ambiguous]

    def first_success_after(self, moment: float) -> float | None:
        """When the first write sent at or after `moment` succeeded; None if none did."""
        answered = [a.answered for a in self.attempts if a.sent >= moment and a.status in (200, 201)]
        return min(answered, default=None)

    def _travel(self, journey: Journey) -> None:
        api = self.api_for()
        journey.booked = self._settle(journey, "book", lambda headers: api.book(self.event_id, journey.user, headers))
        if journey.cancels:
            journey.cancelled = self._settle(
                journey, "cancel", lambda headers: api.cancel(self.event_id, journey.user, headers)
            )
        with self._lock:
            self._finished += 1
            if self._finished >= len(self.journeys) // 3:
                self.third_done.set()

    def _settle(self, journey: Journey, action: str, send) -> Reply:
        """Send until a reply says what happened; the same key on every retry if the journey is keyed."""
        headers = {"Idempotency-Key": uuid.uuid4().hex} if journey.keyed else {}
        for attempt in range(self.retry.attempts):
            sent_at = time.monotonic()
            reply = send(headers)
            with self._lock:
                self.attempts.append(Attempt(action, sent_at, time.monotonic(), reply.status))
            if not reply.retry_later:
                return reply
            time.sleep(self.retry.pause(attempt))  # a real client's back-off, not an ordering device
        pytest.fail(f"{journey.user}: no answer after {self.retry.attempts} attempts: {reply}")


def shown_bookings(journeys: list[Journey]) -> list[dict]:
    """Every booking a client was shown in a 2xx reply: its own, and those its cancel promoted."""
    shown = [j.booked.booking for j in journeys if j.booked.status == 201]
    shown += [j.cancelled.body["promoted"] for j in journeys if j.cancelled and j.cancelled.status == 200]
    return [booking for booking in shown if booking is not None]


def stored_bookings(db, event_id: str) -> dict[str, object]:
    """The event's booking rows, by id, read from the tables."""
    with db.connect() as conn:
        return {row.id: row for row in conn.execute(BOOKINGS, {"event_id": event_id})}


def assert_every_journey_stored_once(load: Load, stored: dict[str, object]) -> None:
    """Every booking a client was shown is stored as shown; each user has one row; every cancel is stored.

    A journey that retried without a key may be told 409 for its own earlier attempt that took effect
    unseen; one with a key is told the first answer again.
    """
    shown = shown_bookings(load.journeys)
    assert all(b["id"] in stored and stored[b["id"]].user_id == b["userId"] for b in shown), "a shown booking is lost"
    assert len(stored) == len(load.journeys), "each user has exactly one booking row: no retry booked twice"
    for journey in load.journeys:
        assert journey.booked.status in ({201} if journey.keyed else {201, 409}), (journey.user, journey.booked)
        if journey.cancels:
            assert journey.cancelled.status in ({200} if journey.keyed else {200, 409}), journey
            assert stored_status(stored, journey.user) == "cancelled"


def stored_status(stored: dict, user: str) -> str:
    return next(row.status for row in stored.values() if row.user_id == user)
