"""The database the service writes to is demoted to a standby, then promoted again, as a Patroni failover
or switchover does to the members the service's connections reach (docs/scaling.md).

Here one real PostgreSQL is restarted in recovery (standby.signal), which refuses every write with
SQLSTATE 25006 `read_only_sql_transaction`, and then promoted with pg_promote(). The service must answer
such a write 503 with Retry-After, never 500, and write again once the server is promoted, without a
restart; a client retrying with its Idempotency-Key gets exactly one booking.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, func, select, text

from app.database.tables import bookings
from tests.helpers.api import ADMIN_TOKEN, apps_from
from tests.helpers.waiting import wait_until

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass(frozen=True)
class Replies:
    """What the service answered while its database was a standby, and once it was promoted."""

    event_id: str
    refused: object  # the keyed booking sent to the standby
    refused_unkeyed: object  # a booking without a key (the group commit's raw cursor), likewise
    after_promotion: object  # the same booking, same key, once promoted
    replayed: object  # and once more


def restart_as_standby(restartable_pg) -> None:
    restartable_pg.server.stop()
    (restartable_pg.server.data_dir / "standby.signal").touch()
    restartable_pg.server.start()


def promote(database_url: str) -> None:
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one():
                conn.execute(text("SELECT pg_promote()"))  # waits until it is done
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def replies(config, restartable_pg) -> Replies:
    with apps_from(config) as make_app:
        client = make_app(database_url=restartable_pg.database_url).test_client()
        created = client.post("/api/initialize", json={"totalTickets": 5}, headers=ADMIN)
        event_id = created.get_json()["event"]["id"]
        book = lambda: client.post(  # noqa: E731
            "/api/book", json={"eventId": event_id, "userId": "ada"}, headers={"Idempotency-Key": "ada-1"}
        )
        restart_as_standby(restartable_pg)
        try:
            # the pool's connections to the stopped server go first: then the refusal is the standby's own
            wait_until(lambda: client.get("/readyz").status_code == 200, "the service reaches the standby")
            refused = book()
            refused_unkeyed = client.post("/api/book", json={"eventId": event_id, "userId": "bob"})
        finally:
            promote(restartable_pg.database_url)
        return Replies(event_id, refused, refused_unkeyed, book(), book())


@pytest.mark.parametrize("reply", ["refused", "refused_unkeyed"])
def test_a_write_while_the_database_is_a_standby_is_a_503_with_retry_after(replies, reply):
    response = getattr(replies, reply)

    assert response.status_code == 503
    assert response.get_json()["code"] == "unavailable"
    assert response.headers["Retry-After"] == "1"


def test_the_same_app_writes_again_once_the_database_is_promoted(replies):
    assert replies.after_promotion.status_code == 201
    assert "Idempotent-Replayed" not in replies.after_promotion.headers, "the refused attempt had no effect"


def test_the_keyed_retry_gets_exactly_one_booking(replies, restartable_pg):
    engine = create_engine(restartable_pg.database_url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                select(func.count()).select_from(bookings).where(bookings.c.event_id == replies.event_id)
            ).scalar_one()
    finally:
        engine.dispose()

    assert replies.replayed.headers["Idempotent-Replayed"] == "true"
    assert replies.replayed.get_json()["booking"]["id"] == replies.after_promotion.get_json()["booking"]["id"]
    assert count == 1
