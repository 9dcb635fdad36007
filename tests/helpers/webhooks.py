"""Webhook fixtures (a pytest plugin, see tests/conftest.py): real receivers, webhooks registered
through the API, and dispatcher threads with test-sized settings."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from sqlalchemy import text

from app.booking.services import write
from app.database.engine import build_engine
from app.notifications.service import RegisterWebhook, Registration
from app.workers.loop import Worker
from app.workers.units import background_units, pool_size
from tests.helpers.receivers import HostileReceiver, Receiver

# Nothing listens on port 9 (discard): for a webhook that must never receive anything.
NOWHERE = "http://127.0.0.1:9/hooks"
CLOCK = text("SELECT clock_timestamp()")
REMOVE_WEBHOOKS_SINCE = text("DELETE FROM webhooks WHERE created_at >= :since")  # their messages go with them


def add_webhook(engine, config, event_id: str, url: str = NOWHERE) -> str:
    """Register a webhook for one event straight through the use case, bypassing HTTP; its id."""
    registration = Registration(config.webhook_secret_keys, allow_private=True)
    return str(write(engine, RegisterWebhook(registration, url, event_id=event_id)).id)


@pytest.fixture
def webhooks_removed_afterwards(engine):
    """Every webhook registered during the test removed afterwards: generated requests register webhooks
    for every event, to made-up hosts, and later tests' dispatchers would spend their sends on them."""
    with engine.connect() as conn:
        since = conn.execute(CLOCK).scalar_one()
    yield
    with engine.begin() as conn:
        conn.execute(REMOVE_WEBHOOKS_SINCE, {"since": since})


@pytest.fixture
def receiver():
    """A started webhook receiver (tests/helpers/receivers.py); stopped afterwards."""
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def register(client, admin_headers):
    """Register a webhook for a receiver through the API (its secret given to the receiver); removed afterwards."""
    made = []

    def register_webhook(receiver, **fields) -> dict:
        response = client.post("/api/webhooks", json={"url": receiver.url, **fields}, headers=admin_headers)
        assert response.status_code == 201, response.get_json()
        webhook = response.get_json()["webhook"]
        receiver.secret = webhook["secret"]
        made.append(webhook["id"])
        return webhook

    yield register_webhook
    for webhook_id in made:
        client.delete(f"/api/webhooks/{webhook_id}", headers=admin_headers)


@pytest.fixture
def dispatcher(config):
    """Start the background process's units (app/workers/: the dispatcher and the sweepers) in a thread,
    with test-sized settings (any Config field may be overridden); all stop afterwards."""
    running = []

    def start(**overrides) -> Worker:
        settings = {
            "webhook_retry_schedule": (0.2, 0.2, 0.2),
            "webhook_timeout_s": 1.0,
            "webhook_poll_interval_s": 0.05,
            **overrides,
        }
        dispatcher_config = dataclasses.replace(config, **settings)
        engine = build_engine(dispatcher_config, pool_size=pool_size(dispatcher_config))
        stop = threading.Event()
        instance = Worker(background_units(engine, dispatcher_config, stop))
        thread = threading.Thread(target=instance.run, args=(stop,), daemon=True)
        thread.start()
        running.append((thread, stop, engine))
        return instance

    yield start
    for thread, stop, engine in running:
        stop.set()
        thread.join(timeout=10)
        engine.dispose()


@pytest.fixture
def hostile_receiver():
    """Start hostile receivers (tests/helpers/receivers.py), each with its reply; all stopped afterwards."""
    started = []

    def start(reply) -> HostileReceiver:
        started.append(HostileReceiver(reply).start())
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()
