"""PostgreSQL stopped and started again under a running load.

While it is down, requests fail fast with 503 `unavailable` and Retry-After, and /readyz says so;
once it is back the same app serves again, with no restart. Clients that retry with their
Idempotency-Key until they get an answer end up with exactly one booking each.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from sqlalchemy import create_engine, select

from app.config import Config
from app.database.tables import bookings
from app.operations import audit
from tests.helpers.api import ADMIN_TOKEN, apps_from

LOAD_THREADS = 4
DEADLINE_S = 30
# Fast means no request waits out a timeout while the database is down: each is refused before the
# connect timeout could expire (measured: a few ms; the bound leaves room for a loaded CI machine).
FAIL_FAST_S = Config.db_connect_timeout_s
CLIENT_PAUSE_S = 0.05  # a client's pause before it retries a 503


@dataclass(frozen=True)
class Sent:
    started: float
    seconds: float
    status: int
    retry_after: str | None
    code: str | None


@dataclass
class Load:
    """Threads booking one new user after another; each user's request is retried with its key until not 503."""

    client_of: callable
    event_id: str
    sent: list[Sent] = field(default_factory=list)
    booked: dict[str, str] = field(default_factory=dict)  # user -> booking id, as acknowledged
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, thread_no: int) -> None:
        client, n = self.client_of(), 0
        while not self.stop.is_set():
            user = f"t{thread_no}-{n}"
            response = self._until_answered(client, user)
            assert response.status_code == 201, response.get_json()
            self.booked[user] = response.get_json()["booking"]["id"]
            n += 1

    def _until_answered(self, client, user: str):
        while True:
            started = time.monotonic()
            response = client.post(
                "/api/book", json={"eventId": self.event_id, "userId": user}, headers={"Idempotency-Key": user}
            )
            body = response.get_json()
            self.sent.append(
                Sent(
                    started,
                    time.monotonic() - started,
                    response.status_code,
                    response.headers.get("Retry-After"),
                    body.get("code"),
                )
            )
            if response.status_code != 503:
                return response
            self.stop.wait(CLIENT_PAUSE_S)

    def wait_for(self, status: int, count: int, since: float) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while sum(s.status == status and s.started >= since for s in self.sent) < count:
            assert time.monotonic() < deadline, f"fewer than {count} responses {status} within {DEADLINE_S}s"
            time.sleep(0.02)  # polling interval, not ordering

    def started_between(self, start: float, end: float) -> list[Sent]:
        return [s for s in self.sent if start <= s.started and s.started + s.seconds <= end]


@dataclass
class Outage:
    load: Load
    down_from: float = 0.0
    down_until: float = 0.0
    ready_while_down: int = 0
    ready_after: int = 0


@pytest.fixture(scope="module")
def outage(config, restartable_pg) -> Outage:
    with apps_from(config) as make_app:  # as the make_app fixture builds apps, but for the whole module
        return record_an_outage(make_app(database_url=restartable_pg.database_url), restartable_pg.server)


def record_an_outage(app, server) -> Outage:
    """Load `app` from a few clients, stop the database `server` and start it again; what they saw."""
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    event_id = client.post("/api/initialize", json={"totalTickets": 50}, headers=admin).get_json()["event"]["id"]
    outage = Outage(Load(app.test_client, event_id))
    with ThreadPoolExecutor(LOAD_THREADS) as pool:
        threads = [pool.submit(outage.load.run, n) for n in range(LOAD_THREADS)]
        try:
            stop_and_start_under_load(server, client, outage)
        finally:
            outage.load.stop.set()
            server.start()  # in case the test failed while it was down
            for thread in threads:
                thread.result()
    return outage


def stop_and_start_under_load(server, client, outage: Outage) -> None:
    load = outage.load
    load.wait_for(201, 20, since=0)
    server.stop()
    outage.down_from = time.monotonic()
    load.wait_for(503, 20, since=outage.down_from)
    outage.ready_while_down = client.get("/readyz").status_code
    outage.down_until = time.monotonic()
    server.start()
    load.wait_for(201, 20, since=time.monotonic())
    outage.ready_after = client.get("/readyz").status_code


def test_while_the_database_is_down_every_request_fails_fast_with_503_and_retry_after(outage):
    while_down = outage.load.started_between(outage.down_from, outage.down_until)

    assert len(while_down) >= 20
    assert {(s.status, s.code, s.retry_after) for s in while_down} == {(503, "unavailable", "1")}
    assert max(s.seconds for s in while_down) < FAIL_FAST_S
    assert outage.ready_while_down == 503


def test_the_service_recovers_by_itself_when_the_database_is_back(outage):
    after = [s for s in outage.load.sent if s.started > outage.down_until]

    assert sum(s.status == 201 for s in after) >= 20
    assert outage.ready_after == 200


def test_no_request_fails_in_any_other_way(outage):
    assert {s.status for s in outage.load.sent} <= {201, 503}


def test_every_acknowledged_booking_is_there_exactly_once(outage, restartable_pg):
    engine = create_engine(restartable_pg.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(bookings.c.user_id, bookings.c.id).where(bookings.c.event_id == outage.load.event_id)
            ).all()
        report = audit.check(engine)
    finally:
        engine.dispose()

    assert sorted((user, str(booking)) for user, booking in rows) == sorted(outage.load.booked.items())
    assert report.ok, report.problems
