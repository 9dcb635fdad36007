"""Rate limits per client (flask-limiter): every request but the operators' and the docs'.

Two budgets, both shared by all the routes they cover, so that a client cannot multiply its budget
by spreading requests over endpoints:
- RATE_LIMIT on every /api/ request, and on any request that matches no route (an unknown path or
  method), so that junk is not the one thing a client may send without limit;
- RATE_LIMIT_WRITE, tighter, on the writes (POST): each takes the event's row lock and writes to
  the database, while reads are single primary-key lookups.

The client is the token's `sub` when the request carries a valid one (AUTH_MODE=jwt), else the peer
address: an IPv4 address whole, an IPv6 address by its /64. A /64 is what one subscriber gets (a home,
a phone, a cloud instance), and a host may take any address in it at will, so keyed on the whole
address a client would get a fresh budget with each new address. An IPv4-mapped IPv6 address
(::ffff:192.0.2.1, a dual-stack socket's) counts as its IPv4 address. Behind TRUSTED_PROXIES reverse proxies, werkzeug's ProxyFix takes
it from that many X-Forwarded-For entries, counted from the right (the ones our proxies appended);
with the default of 0 the header is ignored, so a client cannot dodge its limit by forging it.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, Response, g, request
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

API_PREFIX = "/api/"
IPV6_CLIENT_PREFIX = 64  # the IPv6 addresses one client may hold
# Never limited: health, for the balancer; /metrics, for Prometheus (it has its token); the docs page,
# its files, the document (the contract exempts them) and `/`, which points to them.
UNLIMITED_ENDPOINTS = frozenset(
    {
        "health.healthz",
        "health.readyz",
        "metrics",
        "api-docs.openapi_swagger_ui",
        "docs_assets.static",
        "api-docs.openapi_json",
        "index.index",
    }
)


def init_app(app: Flask, config) -> None:
    """Rate-limit `app` as `config` says; an empty RATE_LIMIT disables rate limiting altogether."""
    if config.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)
    limiter = Limiter(
        _client_key,
        # flask-limiter skips a request that matched no route (no endpoint); name it, so it counts.
        request_identifier=lambda: request.endpoint or "unmatched",
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
    # after_request hooks run in reverse order: these two wrap the limiter's own header hook.
    app.after_request(_retry_after_only_when_limited)
    limiter.init_app(app)
    app.after_request(_remember_own_retry_after)


def _client_key() -> str:
    """The token's sub when app/web/identity.py verified one (AUTH_MODE=jwt), else the client's network."""
    sub = getattr(g.get("caller"), "sub", None)
    return f"sub:{sub}" if sub else client_network(get_remote_address())


def client_network(address: str) -> str:
    """What the limit counts for a peer `address`: an IPv4 address itself, an IPv6 address's /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # not an address (a test client's, a unix socket's): counted as it is
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network((ip, IPV6_CLIENT_PREFIX), strict=False))


def _budgets(config) -> list[ApplicationLimit]:
    # The write budget first: the X-RateLimit-* headers describe the first budget that applies, and
    # on a write the tighter one is what the client needs to know.
    budgets = [ApplicationLimit(config.rate_limit, scope="api")]
    if config.rate_limit_write:
        budgets.insert(0, ApplicationLimit(config.rate_limit_write, scope="api-write", methods=["POST"]))
    return budgets


def _remember_own_retry_after(response: Response) -> Response:
    g.own_retry_after = response.headers.get("Retry-After")  # a 503's, set by app/web/errors.py
    return response


def _retry_after_only_when_limited(response: Response) -> Response:
    # flask-limiter puts Retry-After (the window's reset) on every response, and raises a 503's own
    # value to it; it belongs on a 429 only, and any other response keeps what it had.
    if response.status_code != 429:
        response.headers.pop("Retry-After", None)
        if g.get("own_retry_after"):
            response.headers["Retry-After"] = g.own_retry_after
    return response


def _exempt() -> bool:
    # A CORS preflight (OPTIONS on a route) is the browser asking, not the client acting.
    preflight = request.method == "OPTIONS" and request.url_rule is not None
    return request.endpoint in UNLIMITED_ENDPOINTS or preflight
