"""Prometheus metrics at /metrics: requests, latency, database connections in use, and every counter the
process registered (bookings by outcome: app/booking/metrics.py; the dispatcher's: app/notifications/metrics.py).

Under gunicorn each worker is a process with its own counters. `make run` (app/operations/serve.py) sets
PROMETHEUS_MULTIPROC_DIR, where prometheus-client keeps every process's values in files, and
/metrics adds them up whichever worker answers; gunicorn.conf.py drops a dead worker's gauges.
Without the variable (tests, a single process) the ordinary in-process registry is used.

Every label value comes from a fixed set, whatever the client sends: the route's rule (a 405 counts
under the route it missed, an unknown path under `unmatched`), the method if it is a standard one,
else `other`, and the status. A client inventing methods or paths adds no series.

In production (APP_ENV=production) /metrics wants `Authorization: Bearer <METRICS_TOKEN>`, or the
admin token while METRICS_TOKEN is unset; elsewhere only when METRICS_TOKEN is set.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from sqlalchemy import Engine, event
from werkzeug.exceptions import MethodNotAllowed

from app.config.production import PRODUCTION
from app.observability.metrics import registry
from app.web.auth import bearer_matches
from app.web.errors import problem
from app.web.request_context import request_duration_s

# Routes that answer no URL rule (unknown paths) share one label, so they cannot blow up the series.
UNMATCHED = "unmatched"
# HTTP's methods (RFC 9110) and PATCH; any other token a client sends is counted as `other`.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "other"

disable_created_metrics()  # no `*_created` series: they double the output and dashboards ignore them

REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by route and status", ["endpoint", "method", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds", "Time to answer a request, by route and status", ["endpoint", "method", "status"]
)
POOL_IN_USE = Gauge(
    "db_pool_connections_in_use", "Database connections checked out of the pool", multiprocess_mode="livesum"
)


def init_app(app: Flask, engine: Engine, config) -> None:
    """Time and count every request, follow `engine`'s pool, and serve /metrics."""
    app.after_request(_observe)
    event.listen(engine, "checkout", lambda *_: POOL_IN_USE.inc())
    event.listen(engine, "checkin", lambda *_: POOL_IN_USE.dec())
    app.config["METRICS_TOKEN"] = scrape_token(config)
    app.add_url_rule("/metrics", "metrics", _scrape)


def scrape_token(config) -> str:
    """The bearer token /metrics wants; empty: none. Production never leaves the service's internals open."""
    if config.metrics_token or config.app_env != PRODUCTION:
        return config.metrics_token
    return config.admin_token


def _observe(response: Response) -> Response:
    labels = (_route(), _method(), str(response.status_code))
    REQUESTS.labels(*labels).inc()
    LATENCY.labels(*labels).observe(request_duration_s())
    return response


def _route() -> str:
    if request.url_rule is not None:
        return request.url_rule.rule
    missed = request.routing_exception
    if isinstance(missed, MethodNotAllowed):  # the path is a route's, the method is not: that route
        adapter = current_app.create_url_adapter(request)
        return adapter.match(method=missed.valid_methods[0], return_rule=True)[0].rule
    return UNMATCHED


def _method() -> str:
    return request.method if request.method in KNOWN_METHODS else OTHER_METHOD


def _scrape() -> Response:
    expected = current_app.config["METRICS_TOKEN"]
    if expected and not bearer_matches(request.headers.get("Authorization", ""), expected):
        refused = problem(401, "unauthorized", "/metrics requires its bearer token")
        refused.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
