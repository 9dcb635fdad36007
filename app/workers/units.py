"""The background units, each a name, one pass and its pace (app/workers/loop.py), built for one process."""

from __future__ import annotations

import threading

import structlog
from sqlalchemy import Engine

from app.booking.holds import sweep_expired_holds
from app.booking.lobby import Draws, draw_due_lobbies
from app.booking.offers import sweep_expired_offers
from app.booking.sweeps import SWEEP_CONNECTIONS, Sweep
from app.config import Config
from app.notifications import dispatcher
from app.notifications.dispatcher import Dispatcher
from app.workers.loop import Unit

# Offers and holds expire within 5 s of their deadline (contract): a pass a second, with room to spare.
SWEEP_EVERY_S = 1.0
# A sweep's slowest pass: EVENTS_PER_PASS events, SWEEP_CONNECTIONS at a time, each waiting its 2 s for the
# event's lock (expire_offers.sql, expire_holds.sql) is 50 s.
SWEEP_HEALTHY_WITHIN_S = 60.0
# A sale's lobby is drawn within 2 s of its opening (contract): a look every half second.
DRAW_EVERY_S = 0.5
# A draw's slowest pass: a lobby of a million entries, drawn whole in one pass (docs/performance.md).
DRAW_HEALTHY_WITHIN_S = 600.0
DISPATCH_HEALTHY_WITHIN_S = 15.0  # a dispatcher whose loop has not reached the database for this long is unhealthy

log = structlog.get_logger("app.workers.units")


def pool_size(config: Config) -> int:
    """The connections the process's engine needs at once: the dispatcher's, the events each sweeper
    (offers, holds) sweeps at once (its query for them is done before they start), and the draw's one."""
    return dispatcher.pool_size(config) + 2 * SWEEP_CONNECTIONS + 1


def background_units(engine: Engine, config: Config, stop: threading.Event) -> list[Unit]:
    """Every unit of a background process; `stop` ends them (the dispatcher's senders give back what they
    have not sent once it is set)."""
    webhooks = Dispatcher(engine, config, stop)
    return [
        Unit(
            "webhook-dispatch",
            lambda _stop: webhooks.loop_once(),
            config.webhook_poll_interval_s,
            DISPATCH_HEALTHY_WITHIN_S,
            close=webhooks.close,
            wake=webhooks.wake,
        ),
        Unit(
            "offer-sweep",
            lambda stop: _told("offers_expired", sweep_expired_offers(engine, stop)),
            SWEEP_EVERY_S,
            SWEEP_HEALTHY_WITHIN_S,
        ),
        Unit(
            "hold-sweep",
            lambda stop: _told("holds_expired", sweep_expired_holds(engine, stop)),
            SWEEP_EVERY_S,
            SWEEP_HEALTHY_WITHIN_S,
        ),
        Unit("lobby-draw", lambda stop: _drawn(draw_due_lobbies(engine, stop)), DRAW_EVERY_S, DRAW_HEALTHY_WITHIN_S),
    ]


def _told(what: str, sweep: Sweep) -> bool:
    """Log a sweeper's pass (app/booking/offers.py, holds.py) if it did anything; whether a backlog is
    left. Once its `stop` is set, the events not yet begun are left to the next process."""
    if sweep.expired or sweep.busy_events:
        log.info(what, expired=sweep.expired, promoted=sweep.promoted_bookings, busy_events=sweep.busy_events)
    return sweep.backlog


def _drawn(draws: Draws) -> bool:
    """Log a draw pass (app/booking/lobby.py) if it did anything; whether a backlog is left."""
    if draws.ranked or draws.seated or draws.busy_events:
        log.info(
            "lobbies_drawn",
            ranked=draws.ranked,
            seated=draws.seated,
            finished=draws.finished,
            busy_events=draws.busy_events,
        )
    return draws.backlog
