"""Prometheus metrics at /metrics: requests, latency, bookings by outcome, database connections in use.

Under gunicorn each worker is a process with its own counters. `make run` (app/operations/serve.py) sets
PROMETHEUS_MULTIPROC_DIR, where prometheus-client keeps every process's values in files, and
/metrics adds them up whichever worker answers; gunicorn.conf.py drops a dead worker's gauges.
Without the variable (tests, a single process) the ordinary in-process registry is used.
"""

from __future__ import annotations

import os

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
    generate_latest, multiprocess,
)
from sqlalchemy import Engine, event

from app.web.request_context import request_duration_s

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
BOOKING_OUTCOMES = ("confirmed", "waiting", "cancelled", "promoted")
# Routes that answer no URL rule (unknown paths) share one label, so they cannot blow up the series.
UNMATCHED = "unmatched"

disable_created_metrics()  # no `*_created` series: they double the output and dashboards ignore them

REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by route and status", ["endpoint", "method", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds", "Time to answer a request, by route and status", ["endpoint", "method", "status"]
)
BOOKINGS = Counter("bookings_total", "Booking outcomes, counted once committed", ["outcome"])
POOL_IN_USE = Gauge(
    "db_pool_connections_in_use", "Database connections checked out of the pool", multiprocess_mode="livesum"
)
for _outcome in BOOKING_OUTCOMES:
    BOOKINGS.labels(_outcome)  # every outcome is scraped from the start, at 0


def init_app(app: Flask, engine: Engine) -> None:
    """Time and count every request, follow `engine`'s pool, and serve /metrics."""
    app.after_request(_observe)
    event.listen(engine, "checkout", lambda *_: POOL_IN_USE.inc())
    event.listen(engine, "checkin", lambda *_: POOL_IN_USE.dec())
    app.add_url_rule("/metrics", "metrics", _scrape)


def count_booking(outcome: str) -> None:
    """Count one committed booking outcome: confirmed, waiting, cancelled or promoted."""
    BOOKINGS.labels(outcome).inc()


def _observe(response: Response) -> Response:
    endpoint = request.url_rule.rule if request.url_rule else UNMATCHED
    labels = (endpoint, request.method, str(response.status_code))
    REQUESTS.labels(*labels).inc()
    LATENCY.labels(*labels).observe(request_duration_s())
    return response


def _scrape() -> Response:
    return Response(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    if not os.environ.get(MULTIPROC_DIR_VARIABLE):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # reads every worker's files
    return registry
