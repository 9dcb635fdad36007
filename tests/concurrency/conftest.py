"""The races' engine, a connection per thread. The races that go through the app run in both AUTH_MODEs:
in jwt mode every request carries the token of a partner backend (bookings:any), so that it may act for
each user the races name."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine

from app import create_app
from app.config.identity import OPEN
from app.web.identity import scope_key
from tests.helpers.races import BARRIER_TIMEOUT_S, THREADS

PARTNER = "race-partner"


@pytest.fixture(scope="module", params=["open", "jwt"])
def app(request, config, jwt_settings, signing_key):
    if request.param == OPEN:
        app = create_app(config)
    else:
        app = create_app(replace(config, identity=jwt_settings))
        app.test_client_class = _client_with(f"Bearer {signing_key.token(PARTNER, 'bookings:any')}")
    yield app
    app.extensions["database"].dispose()


@pytest.fixture(scope="module")
def race_engine(database_url):
    """A connection per thread, opened before the first race so that every thread contends at once."""
    engine = create_engine(database_url, pool_size=THREADS, max_overflow=0, pool_timeout=BARRIER_TIMEOUT_S)
    warm = [engine.connect() for _ in range(THREADS)]
    for conn in warm:
        conn.close()
    yield engine
    engine.dispose()


@pytest.fixture
def stored_key(app):
    """The Idempotency-Key as the app stores it: scoped to the partner's sub in jwt mode."""
    return lambda key: key if app.config["AUTH_MODE"] == OPEN else scope_key(f"sub:{PARTNER}", key)


def _client_with(authorization: str) -> type[FlaskClient]:
    class AuthorizedClient(FlaskClient):
        """Sends `authorization` unless a request names its own (the admin token, for /api/initialize)."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.environ_base["HTTP_AUTHORIZATION"] = authorization

    return AuthorizedClient
