"""Event ticket booking service: `create_app(config)` builds one app; nothing is built at import time."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from app.config import Config
from app.database.engine import db
from app.observability.logs import configure_logging
from app.operations import cli
from app.web import admission, docs, errors, identity, limits, metrics, request_body, request_context, security
from app.web.blueprint import AnyCharacterPath
from app.web.webhook_admin import webhook_admin

API_VERSION = "1.0.0"


def create_app(config: Config | None = None) -> Flask:
    """Build the app from `config`, or from the environment when none is given."""
    config = config or Config.from_env()
    configure_logging(config.log_level)
    app = Flask(__name__)
    app.request_class = request_body.Request  # MAX_BODY_BYTES holds for a chunked body too
    app.json = request_body.StrictJSONProvider(app)
    app.json.sort_keys = False  # keep the schemas' field order: id first, as the contract shows
    app.config.update(_flask_settings(config))
    app.url_map.converters["path"] = AnyCharacterPath  # before any route is added: user ids hold any character
    db.init_app(app, config)
    webhook_admin.init_app(app, config)
    _register_blueprints(docs.create_api(app))
    errors.init_app(app)  # after the Api, whose own error handler it replaces
    # The request hooks, in the order they run. before_request, in order of registration:
    #   1. request_context: request id and log context (before any hook can refuse), a URL that is not
    #      UTF-8 (400), JSON-only POSTs (415)
    #   2. identity: the caller of the request, from its bearer token (AUTH_MODE=jwt; refuses nothing yet)
    #   3. limits: the rate limit (429), per caller
    #   4. admission: reads first, then N writes at once (a request refused above never waits)
    # after_request runs in reverse: security headers, metrics, limits' headers, then
    # request_context's X-Request-ID and access log line, last, so it sees the final status.
    request_context.init_app(app)
    identity.init_app(app, config.identity)
    limits.init_app(app, config)
    admission.init_app(app, config)
    metrics.init_app(app, db.engine_of(app), config)
    security.init_app(app, config)
    cli.init_app(app)
    return app


def _flask_settings(config: Config) -> dict:
    return {
        "ADMIN_TOKEN": config.admin_token,
        "MAX_CONTENT_LENGTH": config.max_body_bytes,
        "IDEMPOTENCY_RETENTION_S": config.idempotency_retention_s,
        "API_TITLE": "Event ticket booking API",
        "API_VERSION": API_VERSION,
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        **docs.settings(jwt_mode=config.identity.mode == "jwt"),
    }


def _register_blueprints(api: Api) -> None:
    from app.web.routes import (
        book,
        cancel,
        events,
        health,
        history,
        holds,
        index,
        initialize,
        offers,
        status,
        users,
        webhooks,
    )

    for module in (initialize, book, cancel, offers, holds, status, users, history, events, webhooks, health, index):
        api.register_blueprint(module.blp)
