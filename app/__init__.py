"""Event ticket booking service."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from app import admission, cli, docs, errors, http, limits, metrics, security
from app.config import Config
from app.extensions import db
from app.logging import configure_logging

API_VERSION = "1.0.0"


def create_app(config: Config | None = None) -> Flask:
    """Build the app from `config`, or from the environment when none is given."""
    config = config or Config.from_env()
    configure_logging(config.log_level)
    app = Flask(__name__)
    app.json.sort_keys = False  # keep the schemas' field order: id first, as the contract shows
    app.config.update(_flask_settings(config))
    db.init_app(app, config)
    _register_blueprints(docs.create_api(app))
    errors.init_app(app)  # after the Api, whose own error handler it replaces
    http.init_app(app)  # first of the request hooks: the request id is set before any can refuse
    limits.init_app(app, config)
    admission.init_app(app, config)  # a request refused by a hook above (415, 429) never waits
    metrics.init_app(app, app.extensions["database"])
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
        **docs.settings(),
    }


def _register_blueprints(api: Api) -> None:
    from app.api import book, cancel, health, history, initialize, status

    for module in (initialize, book, cancel, status, history, health):
        api.register_blueprint(module.blp)
