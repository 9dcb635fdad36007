"""Session settings the app's connections carry, with and without a pooler in front of PostgreSQL.

Behind PgBouncer in transaction pooling mode the app must not send libpq's `options` startup
parameter (the bouncer refuses it); its timeouts are then the server's own defaults.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, make_url, text

# (setting, Config field, a value for the app to set, how PostgreSQL shows it)
TIMEOUTS = [
    ("statement_timeout", "db_statement_timeout_ms", 2500, "2500ms"),
    ("lock_timeout", "db_lock_timeout_ms", 700, "700ms"),
]
SERVER_DEFAULT = "7s"


def setting_seen_by_app(app, setting: str) -> str:
    with app.extensions["database"].connect() as conn:
        return conn.execute(text(f"SHOW {setting}")).scalar_one()


@pytest.fixture
def database_defaults(database_url):
    """Give the session database a default of 7 s for both timeouts while the test runs."""
    name = make_url(database_url).database
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for setting, *_ in TIMEOUTS:
            conn.execute(text(f"ALTER DATABASE \"{name}\" SET {setting} = '{SERVER_DEFAULT}'"))
    yield
    with engine.connect() as conn:
        for setting, *_ in TIMEOUTS:
            conn.execute(text(f'ALTER DATABASE "{name}" RESET {setting}'))
    engine.dispose()


@pytest.mark.parametrize(("setting", "field", "value", "shown"), TIMEOUTS, ids=[t[0] for t in TIMEOUTS])
def test_app_sets_its_configured_timeouts_on_each_connection(make_app, setting, field, value, shown):
    assert setting_seen_by_app(make_app(**{field: value}), setting) == shown


@pytest.mark.parametrize(("setting", "field", "value", "shown"), TIMEOUTS, ids=[t[0] for t in TIMEOUTS])
def test_app_without_a_timeout_leaves_the_servers_default_in_force(
    make_app, database_defaults, setting, field, value, shown
):
    assert setting_seen_by_app(make_app(**{field: None}), setting) == SERVER_DEFAULT
