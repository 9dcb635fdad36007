"""The app under test: built with settings overridden, the admin token the tests use, problem+json answers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask

from app import create_app
from app.config import Config

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
WEBHOOK_SECRET_KEY = "dGVzdC13ZWJob29rLXNlY3JldC1rZXktMzItYnl0ZXM="  # a Fernet key: 32 bytes, base64
NIL_UUID = "00000000-0000-0000-0000-000000000000"  # a well-formed id that names no event
PROBLEM = "application/problem+json"
UNREACHABLE_DATABASE_URL = "postgresql+psycopg2://nobody@127.0.0.1:1/none"  # nothing listens on port 1


def assert_problem(response, status, code):
    """Check that `response` is the contract's problem+json with `status` and `code`; its body."""
    body = response.get_json(force=True)
    assert response.status_code == status, body
    assert response.mimetype == PROBLEM
    assert body["code"] == code and body["status"] == status and body["type"] == "about:blank"
    assert body["title"] and body["requestId"] == response.headers["X-Request-ID"]
    return body


@contextmanager
def apps_from(config: Config) -> Iterator[Callable[..., Flask]]:
    """A builder of apps from `config` with some settings overridden, `build(db_pool_size=1)`; each call
    builds a new app with an engine of its own, and every engine is disposed on leaving the block.

    Tests use it through the `make_app` fixture; a fixture of a wider scope may use it directly.
    """
    built: list[Flask] = []

    def build(**overrides) -> Flask:
        app = create_app(dataclasses.replace(config, **overrides))
        built.append(app)
        return app

    try:
        yield build
    finally:
        for app in built:
            app.extensions["database"].dispose()


def padded(body: dict, size: int) -> bytes:
    """`body` as JSON followed by spaces up to `size` bytes: still valid JSON, of exactly that size."""
    raw = json.dumps(body).encode()
    return raw + b" " * (size - len(raw))


def as_csv_text(entries: list[dict]) -> list[dict]:
    """JSON entries as the CSV export renders them: every value as text, null as nothing, items as one cell."""
    return [{key: _csv_text(value) for key, value in entry.items()} for entry in entries]


def _csv_text(value) -> str:
    if isinstance(value, list):  # a booking's items
        return ";".join(f"{item['ticketType']}:{item['quantity']}" for item in value)
    return "" if value is None else str(value)


def event_now(client, event: dict) -> dict:
    """The event as its status reads now."""
    return client.get(f"/api/status/{event['id']}").get_json()["event"]


def booking_now(client, event: dict, user: str) -> dict:
    """`user`'s booking at the event as its booking-status reads now."""
    return client.get(f"/api/booking-status/{event['id']}/{user}").get_json()["booking"]
