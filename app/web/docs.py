"""The OpenAPI document (/openapi.json) and the interactive docs page (/docs), served without any CDN.

flask-smorest writes the document from the same marshmallow schemas that validate the requests. This
module adds what the schemas cannot say: every error is problem+json (one response component per
status, listing the contract's codes), the cross-cutting responses and headers that the request
plumbing adds to every operation, and the admin bearer scheme. Swagger UI's files (version 5, the
first to read OpenAPI 3.1) come from the `flask-swagger-ui` package and are served by the app itself;
only its files are used, not its blueprint, whose page has an inline script.
"""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import flask_swagger_ui
from apispec import BasePlugin
from flask import Blueprint, Flask
from flask_smorest import Api

from app.web.errors import PROBLEM_JSON, codes_for
from app.web.limits import API_PREFIX
from app.web.request_context import SANE_REQUEST_ID
from app.web.schemas import ActingUserId, ProblemSchema

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).parent / "dist"
# Security requirements, alternatives: the static ADMIN_TOKEN, or a JWT with the scope listed.
ADMIN_SECURITY = [{"adminToken": []}, {"bearerJwt": ["events:admin"]}]
# AUTH_MODE=jwt: the user's own token, or a partner backend's with bookings:any.
USER_SECURITY = [{"bearerJwt": []}, {"bearerJwt": ["bookings:any"]}]
# AUTH_MODE=jwt: the payment backend's token (or an admin's, or the static admin token); open mode: anyone.
CONFIRM_SECURITY = [{"bearerJwt": ["bookings:confirm"]}, {"bearerJwt": ["events:admin"]}, {"adminToken": []}]
SECURITY_SCHEMES = {
    "adminToken": {"type": "http", "scheme": "bearer"},  # the static ADMIN_TOKEN, admin routes only
    "bearerJwt": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "With AUTH_MODE=jwt: an access token from the identity provider. Its `sub` is the acting "
        "user; its `scope` (space-separated) may hold `bookings:any` (act for any user), `bookings:confirm` (confirm "
        "any user's hold: the payment backend) or `events:admin`. "
        "With AUTH_MODE=open no token is checked, except ADMIN_TOKEN on admin routes.",
    },
}
LOCATION_HEADER = {"description": "The new event's status URL", "schema": {"type": "string"}}
DESCRIPTION = """\
Book tickets for events, with a first-come-first-served waiting list once an event is sold out.

Every error is `application/problem+json` (RFC 9457) with a stable machine-readable `code` and the
`requestId` to quote when reporting it. Every response carries `X-Request-ID`: the client's own when
it sent a sane one (1..128 of `A-Z a-z 0-9 . _ : -`), else a generated one. Routes under `/api/` are
rate limited per client (per token `sub` when a valid token is sent): a `429` carries `Retry-After`
and the `X-RateLimit-*` headers.

Identity (`AUTH_MODE`): with `jwt`, every `/api/` route but `GET /api/status/{eventId}` needs
`Authorization: Bearer <JWT>`; a token acts for its own `sub`, the `bookings:any` scope for any user,
`events:admin` (or the static admin token) on the admin routes. `401 unauthorized` for a missing or
invalid token, `403 forbidden` for a valid one without the right. With `open` (v1), the body's `userId`
is trusted.
"""

REQUEST_ID_HEADER = {
    "description": "The request's id: the client's `X-Request-ID` if it was sane, else a generated one",
    "schema": {"type": "string", "pattern": SANE_REQUEST_ID.pattern},
}
# Any value is accepted: one that is not sane is replaced, not refused.
REQUEST_ID_PARAMETER = {
    "in": "header",
    "name": "X-Request-ID",
    "required": False,
    "schema": {"type": "string"},
    "description": "An id for this request, echoed in the response and in every log line of the request; "
    "replaced by a generated one unless it is 1..128 of `A-Z a-z 0-9 . _ : -`. The ledger records the "
    "server's own id instead",
}
RETRY_AFTER_HEADER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {"description": "Requests allowed in the window", "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the window", "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "When the window resets (Unix time)", "schema": {"type": "integer"}},
}
# Headers that a status always carries, besides X-Request-ID.
STATUS_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": 'The bearer challenge: `Bearer error="invalid_token"` with AUTH_MODE=jwt, '
            '`Bearer realm="admin"` with AUTH_MODE=open',
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": RETRY_AFTER_HEADER, **RATE_LIMIT_HEADERS},
    503: {"Retry-After": RETRY_AFTER_HEADER},
}


def settings(jwt_mode: bool) -> dict:
    """flask-smorest settings: the document, and Swagger UI pointed at the app's own copy of its files.

    With AUTH_MODE=open the document is v1's: no JWT scheme, since no route checks one.
    """
    schemes = SECURITY_SCHEMES if jwt_mode else {"adminToken": SECURITY_SCHEMES["adminToken"]}
    return {
        "API_SPEC_OPTIONS": {
            "info": {"description": DESCRIPTION},
            "components": {"securitySchemes": schemes},
        },
        "OPENAPI_SWAGGER_UI_PATH": DOCS_PATH,
        "OPENAPI_SWAGGER_UI_URL": ASSETS_PATH + "/",
        # No call to an outside validator (the default): the page must work with no internet.
        "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None, "tryItOutEnabled": True},
    }


def create_api(app: Flask) -> Api:
    """The app's Api, plus the route that serves Swagger UI's files."""
    app.register_blueprint(
        Blueprint("docs_assets", __name__, static_folder=SWAGGER_UI_DIST, static_url_path=ASSETS_PATH)
    )
    plugin = CrossCuttingPlugin(jwt_mode="bearerJwt" in app.config["API_SPEC_OPTIONS"]["components"]["securitySchemes"])
    return ProblemApi(app, spec_kwargs={"extra_plugins": [plugin]})


class ProblemApi(Api):
    """flask-smorest's Api with each error status documented once, as problem+json."""

    ERROR_SCHEMA = ProblemSchema
    # No catch-all "default" response: each operation lists the errors it can answer with.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_responses(self):
        # Replaces flask-smorest's defaults (its own error schema, as application/json); the names
        # stay the same (BAD_REQUEST, ...), since `Blueprint.arguments` refers to them.
        self.spec.components.header("RequestId", REQUEST_ID_HEADER)
        for status in HTTPStatus:
            if status >= 400:
                self.spec.components.response(status.name, problem_response(status), lazy=True)

    def _register_pagination_header(self):
        pass  # nothing is paginated: no PaginationMetadata schema in the document to puzzle its readers


def problem_response(status: HTTPStatus) -> dict:
    """A problem+json response for `status`, listing the contract's codes for it, with an example."""
    codes = codes_for(status) or ["invalid_request" if status < 500 else "internal_error"]
    example = {
        "type": "about:blank",
        "title": status.phrase,
        "status": int(status),
        "code": codes[0],
        "requestId": "0f9d5b8e2c6a4d0e9b1f3a7c5e2d8b4a",
    }
    return {
        "description": f"{status.phrase}: " + ", ".join(f"`{code}`" for code in codes),
        "content": {PROBLEM_JSON: {"schema": ProblemSchema, "example": example}},
        "headers": {"X-Request-ID": "RequestId", **STATUS_HEADERS.get(status, {})},
    }


class CrossCuttingPlugin(BasePlugin):
    """Documents on every operation what the request plumbing, not the view, adds to it."""

    def __init__(self, jwt_mode: bool) -> None:
        self.jwt_mode = jwt_mode

    def schema_helper(self, name, definition, schema=None, **kwargs):
        """What a schema states of the whole body (`openapi_extra`: a rule between fields); and with
        AUTH_MODE=open, a userId that jwt mode lets a token supply is required, as in v1."""
        if schema is None:
            return None
        instance = schema() if isinstance(schema, type) else schema
        extra = dict(getattr(instance, "openapi_extra", {}))
        acting = [field.data_key or key for key, field in instance.fields.items() if isinstance(field, ActingUserId)]
        if acting and not self.jwt_mode:
            extra["required"] = [*definition.get("required", []), *acting]
        return extra or None

    def operation_helper(self, path=None, operations=None, **kwargs):
        for method, operation in (operations or {}).items():
            if not self.jwt_mode:
                _without_jwt(operation)
            operation.setdefault("parameters", []).append(REQUEST_ID_PARAMETER)
            responses = operation.setdefault("responses", {})
            for response in responses.values():
                if isinstance(response, dict):  # the view's own success response
                    response.setdefault("headers", {})["X-Request-ID"] = "RequestId"
            for status in self._plumbing_errors(path, method):
                responses.setdefault(status, HTTPStatus(status).name)

    @staticmethod
    def _plumbing_errors(path: str, method: str) -> list[int]:
        # Any operation can fail unexpectedly (500), and refuses a URL that is not UTF-8 (400,
        # app/web/request_context.py).
        errors = [400, 500]
        if path.startswith(API_PREFIX):
            errors.append(429)  # app/web/limits.py
        if method == "post":
            errors += [413, 415]  # MAX_BODY_BYTES; app/web/request_context.py's JSON-only rule
        return errors


def _without_jwt(operation: dict) -> None:
    """AUTH_MODE=open: only the admin token is ever checked, on the admin routes alone (a confirm takes it in
    jwt mode, and anyone's call in open mode), and 403 never answered."""
    admin_only = operation.get("security") == ADMIN_SECURITY
    security = [{"adminToken": []}] if admin_only else []
    operation.pop("security", None)
    responses = operation.get("responses", {})
    for status in (403, "403") if security else (401, "401", 403, "403"):
        responses.pop(status, None)
    if security:
        operation["security"] = security
