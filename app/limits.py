"""Rate limits per client on the /api/ routes (flask-limiter).

Two budgets, both shared by all the routes they cover, so that a client cannot multiply its budget
by spreading requests over endpoints:
- RATE_LIMIT on every /api/ request;
- RATE_LIMIT_WRITE, tighter, on the writes (POST): each takes the event's row lock and writes to
  the database, while reads are single primary-key lookups.

The client is the peer address. Behind TRUSTED_PROXIES reverse proxies, werkzeug's ProxyFix takes
it from that many X-Forwarded-For entries, counted from the right (the ones our proxies appended);
with the default of 0 the header is ignored, so a client cannot dodge its limit by forging it.
"""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

API_PREFIX = "/api/"


def init_app(app: Flask, config) -> None:
    """Rate-limit `app` as `config` says; an empty RATE_LIMIT disables rate limiting altogether."""
    if config.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)
    limiter = Limiter(
        get_remote_address,
        application_limits=_budgets(config),
        storage_uri=config.rate_limit_storage_uri,
        key_prefix=config.rate_limit_key_prefix,
        headers_enabled=True,  # X-RateLimit-Limit/-Remaining/-Reset, and Retry-After on a 429
        # Shared storage down (Redis restarting): limit each process on its own meanwhile, rather
        # than fail every request; flask-limiter goes back to the storage once it answers again.
        in_memory_fallback_enabled=True,
        enabled=bool(config.rate_limit),
    )
    limiter.request_filter(_exempt)
    limiter.init_app(app)


def _budgets(config) -> list[ApplicationLimit]:
    budgets = [ApplicationLimit(config.rate_limit, scope="api")]
    if config.rate_limit_write:
        budgets.append(ApplicationLimit(config.rate_limit_write, scope="api-write", methods=["POST"]))
    return budgets


def _exempt() -> bool:
    # Health, metrics, docs and the document are for operators and tools; a CORS preflight is the
    # browser asking, not the client acting.
    return not request.path.startswith(API_PREFIX) or request.method == "OPTIONS"
