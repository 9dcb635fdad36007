"""Fixtures: a real PostgreSQL for every test that needs one, never SQLite.

The server is TEST_DATABASE_URL, else DATABASE_URL, else an embedded PostgreSQL under
`instance/pgdata-test` (kept apart from `make run`'s data). Each test session works in a scratch
database of its own, created and migrated with alembic at the start and dropped at the end, so a
test run never touches the data behind DATABASE_URL.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg2.extensions
import pytest
from sqlalchemy import create_engine, event

from app.config import INSTANCE_DIR, Config, normalise_database_url
from app.operations.embedded_pg import EmbeddedPostgres
from tests.helpers.api import ADMIN_TOKEN, WEBHOOK_SECRET_KEY, apps_from
from tests.helpers.database import drop_database, migrate, scratch_database

# AUTH_MODE=jwt: a test identity provider, tokens, apps; webhooks: receivers, registrations, dispatchers;
# the walks against the launcher: the server in either AUTH_MODE.
pytest_plugins = ["tests.helpers.identity", "tests.helpers.webhooks", "tests.helpers.walks"]


@pytest.fixture(scope="session")
def server_url():
    """URL of a PostgreSQL server on which the tests may create databases."""
    configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        yield normalise_database_url(configured)
        return
    server = EmbeddedPostgres(INSTANCE_DIR / "pgdata-test")
    server.start()
    yield server.url()
    if not server.adopted:
        server.stop()


@dataclass(frozen=True)
class RestartablePostgres:
    """A PostgreSQL server of the tests' own, which a test may stop (or crash) and start at will."""

    server: EmbeddedPostgres
    database_url: str


@pytest.fixture(scope="session")
def restartable_pg():
    """An embedded PostgreSQL in a scratch folder, with a migrated database; never the shared server.

    The folder is made with mkdtemp, not pytest's tmp_path: as root, PostgreSQL runs as the
    `pgserver` user, which cannot enter /tmp/pytest-of-root.
    """
    folder = Path(tempfile.mkdtemp(prefix="booking-restartable-pg-"))
    server = EmbeddedPostgres(folder / "pgdata")
    server.start()
    url = server.ensure_database("booking")
    migrate(url, "head")
    yield RestartablePostgres(server, url)
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(server_url):
    """A fresh database for this session, migrated to head."""
    url = scratch_database(server_url)
    migrate(url, "head")
    yield url
    drop_database(server_url, url)


@pytest.fixture
def scratch_url(server_url):
    """An empty database of this test's own, dropped afterwards."""
    url = scratch_database(server_url)
    yield url
    drop_database(server_url, url)


@pytest.fixture(scope="session")
def engine(database_url):
    engine = create_engine(database_url, pool_size=4, max_overflow=60)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def config(database_url):
    return Config(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        rate_limit="",
        webhook_secret_keys=(WEBHOOK_SECRET_KEY,),
        webhook_allow_private=True,  # the tests' receivers listen on loopback
    )


@pytest.fixture(scope="session")
def app(config):
    with apps_from(config) as build:
        yield build()


@pytest.fixture
def make_app(config):
    """Build an app like the session's with some settings overridden, `make_app(rate_limit="2 per minute")`.

    Each call is a new app with an engine of its own, disposed after the test; with no settings, a fresh
    app to add a route to. Every test that needs another config gets its app this way.
    """
    with apps_from(config) as build:
        yield build


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def issued(app):
    """The SQL the app sends from now on, as sent (psycopg2 interpolates parameters client-side).

    Seen by the driver's cursors, so that the raw DBAPI path of a booking batch shows too
    (app/database/engine.py, fetch_autocommit): each connection the pool lends meanwhile makes cursors
    that record what they execute, and goes back to plain cursors when it returns.
    """
    statements: list[str] = []

    class RecordingCursor(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):  # noqa: A002 (psycopg2's own name)
            statements.append(self.mogrify(query, vars).decode())
            return super().execute(query, vars)

    def record(dbapi_connection, *_):
        dbapi_connection.cursor_factory = RecordingCursor

    def stop_recording(dbapi_connection, _record):
        dbapi_connection.cursor_factory = psycopg2.extensions.cursor

    engine = app.extensions["database"]
    event.listen(engine, "checkout", record)
    event.listen(engine, "checkin", stop_recording)
    yield statements
    event.remove(engine, "checkout", record)
    event.remove(engine, "checkin", stop_recording)


@pytest.fixture
def scratch():
    """A scratch folder outside pytest's tmp_path: as root, the embedded PostgreSQL runs as the `pgserver`
    user, which cannot enter /tmp/pytest-of-root (0700, and re-tightened by every new pytest session)."""
    path = Path(tempfile.mkdtemp(prefix="booking-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def admin_headers():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def new_event(client, admin_headers):
    """Open an event through the API and return its JSON; each test gets events of its own."""

    def open_event(total_tickets: int = 10, **fields) -> dict:
        response = client.post("/api/initialize", json={"totalTickets": total_tickets, **fields}, headers=admin_headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["event"]

    return open_event


# The requests many API tests send, answered as they come (a module with its own `book` or `patch` that
# asserts its answer overrides these).
@pytest.fixture
def book(client):
    def post(event: dict, user: str, **fields):
        return client.post("/api/book", json={"eventId": event["id"], "userId": user, **fields})

    return post


@pytest.fixture
def cancel(client):
    def post(event: dict, user: str, **fields):
        return client.post("/api/cancel", json={"eventId": event["id"], "userId": user, **fields})

    return post


@pytest.fixture
def patch(client, admin_headers):
    def send(event: dict, **fields):
        return client.patch(f"/api/events/{event['id']}", json=fields, headers=admin_headers)

    return send


@pytest.fixture
def status(client):
    def get(event: dict) -> dict:
        return client.get(f"/api/status/{event['id']}").get_json()["event"]

    return get
