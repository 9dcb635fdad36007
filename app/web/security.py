"""Hardened HTTP: security headers on every response, and CORS by allow-list.

What production mode (APP_ENV=production) refuses to start with is configuration: app/config/production.py.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_cors import CORS

from app.web.docs import DOCS_PATH
from app.web.limits import API_PREFIX

# JSON responses load nothing and belong in no frame.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI: its scripts and styles come from the app; it sets inline style attributes, shows data:
# images and calls the API (connect-src). No inline script: app/templates/swagger_ui.html has none.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# Swagger UI's files and the app's own static files may be cached; every other answer is live data.
CACHEABLE_ENDPOINTS = {"static", "docs_assets.static"}
# What a browser client may send and read across origins, when CORS_ORIGINS allows it.
CORS_ALLOW_HEADERS = ["Content-Type", "Authorization", "X-Request-ID", "Idempotency-Key"]
CORS_EXPOSE_HEADERS = [
    "Location",
    "Retry-After",
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Idempotent-Replayed",
]


def init_app(app: Flask, config) -> None:
    """Add the security headers to every response; allow CORS from `config.cors_origins` only."""
    app.after_request(_add_security_headers)
    if config.cors_origins:
        app.after_request(_vary_on_origin)  # registered before flask-cors's hook, so it runs after it
        CORS(
            app,
            resources={r"/api/*": {"origins": list(config.cors_origins)}},
            methods=["GET", "POST"],
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            max_age=600,
        )


def _vary_on_origin(response: Response) -> Response:
    # An /api/ answer depends on the request's Origin (CORS headers for an allowed one, none for
    # another); flask-cors says so only when several origins are allowed, and never on the answer
    # to an origin it refused, which a cache could then hand to an allowed one.
    if request.path.startswith(API_PREFIX):
        response.vary.add("Origin")
    return response


def _add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Content-Security-Policy"] = DOCS_CSP if request.path == DOCS_PATH else API_CSP
    if request.endpoint not in CACHEABLE_ENDPOINTS:
        headers["Cache-Control"] = "no-store"
    return response
