"""Chaos: clients that book and cancel and retry blindly with Idempotency-Keys, while the harness
kills gunicorn workers, the whole server and the database; then an audit of everything they were told.

Every client owns its users, so it knows exactly what each of its requests must answer, and it
retries each request (same key, random client timeouts) until it gets an answer. At the end every
acknowledged booking and cancellation must be in the ledger exactly once (lost 0, duplicated 0),
every user must be where their last answer left them (read over HTTP), and `flask check` must pass.

A webhook receiver (which fails a share of its deliveries with 503) hears about every change through a
dispatcher process, which the faults also kill; at the end every committed change (every ledger
entry) must have reached it at least once, each booking's changes in the ledger's order, and nothing
may have reached it that the ledger does not hold.
"""

from __future__ import annotations

import http.client
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug import Response

from app.config import PROJECT_ROOT
from app.operations.embedded_pg import EmbeddedPostgres
from tests.helpers.live_server import DispatcherProcess, Gunicorn, call
from tests.helpers.receivers import Receiver

ADMIN_TOKEN = "chaos-admin-token-0123456789abcdef"
WEBHOOK_SETTINGS = {
    "WEBHOOK_SECRET_KEY": "Y2hhb3Mtd2ViaG9vay1rZXktY2hhb3Mtd2ViaG9vay0=",
    "WEBHOOK_ALLOW_PRIVATE": "true",
}
DISPATCHER_SETTINGS = {
    **WEBHOOK_SETTINGS,
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "WEBHOOK_TIMEOUT_S": "1",
    "WEBHOOK_RETRY_SCHEDULE": ",".join(["1s"] * 30),
}
RECEIVER_FAILURE_RATE = 0.2  # of deliveries answered 503, to be tried again
DELIVERY_DEADLINE_S = 90  # after the storm, for every message to reach the receiver
DATABASE_DOWNTIME_S = 0.5
SERVER_DOWNTIME_S = 0.3
ANSWER_DEADLINE_S = 90  # a request still unanswered after this is a failure of the harness's run
IN_PROGRESS = "request_in_progress"
NOT_NOW = (429, 503)  # statuses that ask the client to come back later: not an answer


@dataclass(frozen=True)
class Settings:
    duration_s: float
    clients: int
    # Spread evenly over the run: "worker" (SIGKILL of one), "server" (SIGKILL of all gunicorn),
    # "database" (clean fast stop, then start), "crash" (immediate stop, then start with recovery) or
    # "dispatcher" (SIGKILL of the webhook dispatcher, then a new one).
    faults: tuple[str, ...]
    users_per_client: int = 3
    events: int = 3
    tickets_per_event: int = 3
    client_timeout_s: tuple[float, float] = (0.05, 1.5)
    repeat_rate: float = 0.1  # how often a client sends an answered request again, to see it replayed
    odd_rate: float = 0.15  # how often a client asks for what its user's state makes pointless
    seed: int = 0


SHORT = Settings(duration_s=8, clients=6, faults=("worker", "crash", "dispatcher"))
LONG = Settings(duration_s=60, clients=12, faults=("worker", "database", "server", "crash", "dispatcher") * 2)


@dataclass
class Tally:
    """Counters the client threads share."""

    requests: int = 0
    retries: int = 0
    repeats: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


@dataclass
class User:
    """One user at one event, as the one client that acts for them knows them."""

    user_id: str
    event_id: str
    active: str | None = None  # id of their confirmed or waiting booking
    last_cancelled: str | None = None

    def expected_code(self, action: str) -> str | None:
        """The refusal the rules must give `action`, or None if it must succeed."""
        if action == "book":
            return "already_booked" if self.active else None
        if self.active:
            return None
        return "already_cancelled" if self.last_cancelled else "booking_not_found"


@dataclass
class Run:
    """What happened: every answer a client acted on, and everything that should not have happened."""

    booked: list[str] = field(default_factory=list)  # booking ids acknowledged by 201
    cancelled: list[str] = field(default_factory=list)  # booking ids acknowledged by 200
    surprises: list[str] = field(default_factory=list)
    faults: Counter = field(default_factory=Counter)
    tally: Tally = field(default_factory=Tally)


class Client:
    """A thread's worth of users and their requests."""

    def __init__(self, harness: Harness, number: int) -> None:
        self.harness, self.rng = harness, random.Random(harness.settings.seed * 1000 + number)
        self.users = [
            User(f"chaos-{number}-{n}", self.rng.choice(harness.event_ids))
            for n in range(harness.settings.users_per_client)
        ]

    def run(self) -> None:
        while not self.harness.stopping.is_set():
            self.act(self.rng.choice(self.users))

    def act(self, user: User) -> None:
        sensible = "cancel" if user.active else "book"
        odd = self.rng.random() < self.harness.settings.odd_rate
        action = {"book": "cancel", "cancel": "book"}[sensible] if odd else sensible
        request = (f"/api/{action}", {"eventId": user.event_id, "userId": user.user_id}, str(uuid.uuid4()))
        status, body = self.harness.until_answered(*request, self.rng)
        self.check(user, action, status, body)
        if self.rng.random() < self.harness.settings.repeat_rate:
            self.harness.repeat(*request, (status, body), self.rng)

    def check(self, user: User, action: str, status: int, body: dict) -> None:
        expected, run = user.expected_code(action), self.harness.run
        code = body.get("code") if status >= 400 else None
        if code != expected:
            run.surprises.append(f"{action} for {user.user_id}: expected {expected or 'success'}, got {status} {body}")
        elif code is None and action == "book":
            user.active = body["booking"]["id"]
            run.booked.append(user.active)
        elif code is None:
            user.active, user.last_cancelled = None, body["booking"]["id"]
            run.cancelled.append(user.last_cancelled)


class Harness:
    """Sets the scene on a running server and database, runs clients and faults, then audits."""

    def __init__(self, settings: Settings, server: EmbeddedPostgres, database_url: str, workdir: Path) -> None:
        self.settings, self.server, self.database_url = settings, server, database_url
        # No rate limit: the clients all come from one address, and the faults are what is under test.
        self.gunicorn = Gunicorn(
            database_url, ADMIN_TOKEN, workdir / "chaos-gunicorn.log", settings={"RATE_LIMIT": "", **WEBHOOK_SETTINGS}
        )
        self.receiver = Receiver()
        self.receiver.answer = flaky_answer(random.Random(settings.seed))
        self.dispatcher = DispatcherProcess(database_url, workdir / "chaos-dispatcher.log", DISPATCHER_SETTINGS)
        self.webhook_id: str | None = None
        self.stopping, self.run = threading.Event(), Run()
        self.event_ids: list[str] = []
        self.clients: list[Client] = []

    def until_answered(self, path: str, body: dict, key: str, rng: random.Random, token: str | None = None):
        """Send the request, again and again with the same key, until it gets an answer; (status, body).

        No answer: the connection failed or timed out, 429 or 503, or 409 request_in_progress.
        """
        deadline, tally = time.monotonic() + ANSWER_DEADLINE_S, self.run.tally
        while True:
            tally.add(requests=1)
            try:
                status, _, answer = call(
                    self.gunicorn.base_url,
                    "POST",
                    path,
                    body,
                    token,
                    {"Idempotency-Key": key},
                    timeout=rng.uniform(*self.settings.client_timeout_s),
                )
                if status not in NOT_NOW and (status, answer.get("code")) != (409, IN_PROGRESS):
                    return status, answer
            except (OSError, http.client.HTTPException):  # refused, reset, timed out, cut off mid-response
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer to {path} {body} within {ANSWER_DEADLINE_S}s")
            tally.add(retries=1)
            time.sleep(rng.uniform(0.01, 0.2))  # a client's pause before it tries again

    def repeat(self, path: str, body: dict, key: str, first: tuple[int, dict], rng: random.Random) -> None:
        """Send an answered request again: it must be answered the same, and change nothing."""
        self.run.tally.add(repeats=1)
        again = self.until_answered(path, body, key, rng)
        if again != first:
            self.run.surprises.append(f"repeat of {path} {body} answered {again}, first {first}")

    def execute(self) -> Verdict:
        """Run the whole thing: server up, events, clients with faults among them, audit; the verdict."""
        self.gunicorn.start()
        self.receiver.start()
        self.dispatcher.start()
        try:
            self.open_events()
            self.storm()
            return audit(self)
        finally:
            self.dispatcher.kill()
            self.receiver.stop()
            self.forget_webhook()
            self.gunicorn.kill()

    def forget_webhook(self) -> None:
        """Delete the webhook: the database may outlive the run (the tests' restartable one), and another
        dispatcher, with another key, would otherwise be handed every later change for it."""
        if self.webhook_id is not None:
            call(self.gunicorn.base_url, "DELETE", f"/api/webhooks/{self.webhook_id}", token=ADMIN_TOKEN)

    def open_events(self) -> None:
        """The events, and a webhook for all of them (registered first: it hears of every change)."""
        rng = random.Random(self.settings.seed)
        status, answer = self.until_answered(
            "/api/webhooks", {"url": self.receiver.url}, str(uuid.uuid4()), rng, ADMIN_TOKEN
        )
        assert status == 201, answer
        self.receiver.secret, self.webhook_id = answer["webhook"]["secret"], answer["webhook"]["id"]
        for n in range(self.settings.events):
            body = {"totalTickets": self.settings.tickets_per_event, "name": f"chaos {n}"}
            status, answer = self.until_answered("/api/initialize", body, str(uuid.uuid4()), rng, ADMIN_TOKEN)
            assert status == 201, answer
            self.event_ids.append(answer["event"]["id"])

    def storm(self) -> None:
        clients = [Client(self, n) for n in range(self.settings.clients)]
        self.clients = clients
        with ThreadPoolExecutor(len(clients)) as pool:
            running = [pool.submit(client.run) for client in clients]
            try:
                self.inject_faults()
            finally:
                self.stopping.set()
            for future in running:
                future.result()

    def inject_faults(self) -> None:
        """The faults, evenly spread over the run's duration."""
        started, faults = time.monotonic(), self.settings.faults
        for n, fault in enumerate(faults, start=1):
            time.sleep(max(0.0, started + self.settings.duration_s * n / (len(faults) + 1) - time.monotonic()))
            getattr(self, f"_{fault}_fault")()
            self.run.faults[fault] += 1
        time.sleep(max(0.0, started + self.settings.duration_s - time.monotonic()))

    def _worker_fault(self) -> None:
        random.choice(self.gunicorn.workers()).kill()  # SIGKILL

    def _database_fault(self, mode: str = "fast") -> None:
        self.server.stop(mode)
        time.sleep(DATABASE_DOWNTIME_S)
        self.server.start()

    def _crash_fault(self) -> None:
        self._database_fault("immediate")

    def _dispatcher_fault(self) -> None:
        self.dispatcher.kill()  # SIGKILL mid-send, perhaps: its claims expire and the new one sends again
        self.dispatcher.start()

    def _server_fault(self) -> None:
        self.gunicorn.kill()  # SIGKILL, master and workers
        time.sleep(SERVER_DOWNTIME_S)
        self.gunicorn.start()


def flaky_answer(rng: random.Random):
    """The chaos receiver's answer: 503 for a share of deliveries, else 204."""
    lock = threading.Lock()

    def answer(_request):
        with lock:
            failing = rng.random() < RECEIVER_FAILURE_RATE
        return Response(status=503 if failing else 204)

    return answer


@dataclass
class Notifications:
    """What the webhook receiver heard, against the ledger."""

    undelivered: list[str] = field(default_factory=list)  # committed changes never acknowledged
    out_of_order: list[str] = field(default_factory=list)  # bookings whose changes arrived out of order
    invented: list[str] = field(default_factory=list)  # messages about changes the ledger does not hold
    rejected: list[str] = field(default_factory=list)  # deliveries whose signature did not verify
    deliveries: int = 0

    @property
    def ok(self) -> bool:
        return not (self.undelivered or self.out_of_order or self.invented or self.rejected)


@dataclass
class Verdict:
    run: Run
    lost: int
    duplicated: int
    check_passed: bool
    check_output: str
    notifications: Notifications = field(default_factory=Notifications)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.run.surprises) and self.check_passed and self.notifications.ok

    def summary(self) -> str:
        run, tally = self.run, self.run.tally
        faults = ", ".join(f"{n} {kind}" for kind, n in sorted(run.faults.items()))
        return (
            f"chaos: {tally.requests} requests, {tally.retries} retries, {tally.repeats} repeats, "
            f"{sum(run.faults.values())} faults injected ({faults}), "
            f"{len(run.booked)} bookings and {len(run.cancelled)} cancellations acknowledged, "
            f"lost {self.lost}, duplicated {self.duplicated}, surprises {len(run.surprises)}, "
            f"flask check {'passed' if self.check_passed else 'FAILED'}; webhook: {self.notifications.deliveries} "
            f"deliveries, undelivered {len(self.notifications.undelivered)}, out of order "
            f"{len(self.notifications.out_of_order)}, invented {len(self.notifications.invented)}"
        )


def audit(harness: Harness) -> Verdict:
    """Compare what the clients were told with the ledger and the bookings, over HTTP, and run flask check."""
    ledger = [entry for event_id in harness.event_ids for entry in history(harness.gunicorn.base_url, event_id)]
    created = [e["bookingId"] for e in ledger if e["kind"] in ("booked", "waitlisted")]
    cancelled = [e["bookingId"] for e in ledger if e["kind"] == "cancelled"]
    run = harness.run
    lost = len(set(run.booked) - set(created)) + len(set(run.cancelled) - set(cancelled))
    duplicated = (
        len(created) - len(set(run.booked) & set(created)) + len(cancelled) - len(set(run.cancelled) & set(cancelled))
    )
    for client in harness.clients:
        run.surprises += [
            f"{user.user_id}: {problem}"
            for user in client.users
            if (problem := misplaced(harness.gunicorn.base_url, user))
        ]
    check = flask_check(harness.database_url)
    return Verdict(
        run, lost, duplicated, check.returncode == 0, check.stdout + check.stderr, notifications(harness, ledger)
    )


KIND_TYPES = {
    "booked": "booking.confirmed",
    "waitlisted": "booking.waitlisted",
    "promoted": "booking.promoted",
    "cancelled": "booking.cancelled",
}


def notifications(harness: Harness, ledger: list[dict]) -> Notifications:
    """Wait for the dispatcher to finish, then compare what the receiver acknowledged with the ledger."""
    expected = [(entry["bookingId"], KIND_TYPES[entry["kind"]]) for entry in sorted(ledger, key=lambda e: e["seq"])]
    deadline = time.monotonic() + DELIVERY_DEADLINE_S
    while not set(expected) <= set(acknowledged(harness.receiver)) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling interval, not ordering
    heard = acknowledged(harness.receiver)
    result = Notifications(deliveries=len(heard), rejected=list(harness.receiver.rejected))
    result.undelivered = [f"{booking} {kind}" for booking, kind in expected if (booking, kind) not in set(heard)]
    result.invented = [f"{booking} {kind}" for booking, kind in set(heard) - set(expected)]
    for booking in {booking for booking, _ in expected}:
        in_ledger = [kind for b, kind in expected if b == booking]
        first_heard = list(dict.fromkeys(kind for b, kind in heard if b == booking))
        if first_heard != in_ledger[: len(first_heard)]:
            result.out_of_order.append(f"{booking}: ledger {in_ledger}, heard {first_heard}")
    return result


def acknowledged(receiver: Receiver) -> list[tuple[str, str]]:
    """(booking id, type) of each delivery the receiver answered with a 2xx, in arrival order."""
    return [(body["data"]["booking"]["id"], body["type"]) for body in list(receiver.delivered)]


def history(base_url: str, event_id: str) -> list[dict]:
    """The event's whole ledger, page by page, over HTTP."""
    entries, after = [], 0
    while after is not None:
        status, _, page = call(
            base_url, "GET", f"/api/events/{event_id}/history?after={after}&limit=500", token=ADMIN_TOKEN
        )
        assert status == 200, page
        entries += page["entries"]
        after = page["nextAfter"]
    return entries


def misplaced(base_url: str, user: User) -> str | None:
    """What is wrong with the user's booking as the service reports it, compared with what they were told."""
    status, _, body = call(base_url, "GET", f"/api/booking-status/{user.event_id}/{user.user_id}")
    if user.active is None and user.last_cancelled is None:
        return None if status == 404 else f"never booked, but the service shows {body}"
    booking = body.get("booking") or {}
    expected_id = user.active or user.last_cancelled
    active = booking.get("status") in ("confirmed", "waiting")
    if booking.get("id") != expected_id or active != (user.active is not None):
        return f"told {expected_id} ({'active' if user.active else 'cancelled'}), but the service shows {body}"
    return None


def flask_check(database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "check"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DATABASE_URL": database_url, "ADMIN_TOKEN": ADMIN_TOKEN},
    )
