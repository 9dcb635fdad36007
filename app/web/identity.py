"""Who may act for whom (AUTH_MODE): the caller of each request, and the authorization matrix.

AUTH_MODE=open is v1: the body's userId is trusted, admin routes take the static ADMIN_TOKEN, and
nothing here runs on a request. AUTH_MODE=jwt:
- before the rate limit, each /api/ request's bearer token becomes its Caller (app/web/tokens.py),
  or the reason it cannot; the limit then counts per `sub`, and every log line of the request
  carries `sub` (never the token). Nothing is refused yet: GET /api/status/<eventId> is public.
- the routes then ask for what they need: `acting_user` (book, cancel), `authorize_user` (a
  user's bookings), `require_admin` (ADMIN_TOKEN, or a token with the events:admin scope),
  `require_confirmer` (confirm a hold: bookings:confirm, events:admin or ADMIN_TOKEN).
- an Idempotency-Key is scoped to the caller (`scoped_idempotency_key`).
The static ADMIN_TOKEN is accepted in jwt mode too, on admin routes only: elsewhere it is a
credential without the right (403).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json

import structlog
from flask import Flask, Response, current_app, g, request

from app.booking.domain import quoted
from app.config.identity import JWT, OPEN, IdentitySettings
from app.web import auth, errors
from app.web.limits import API_PREFIX
from app.web.tokens import STATIC_ADMIN, Caller, IdentityError, InvalidToken, ProviderUnavailable, TokenVerifier

BEARER = "bearer "
# The payment backend's scope: it confirms the hold of any user, once the payment is done (issue 25).
CONFIRM_BOOKINGS = "bookings:confirm"
WWW_AUTHENTICATE = 'Bearer error="invalid_token"'
EXTENSION = "identity"

log = structlog.get_logger("app.web.identity")


class Forbidden(IdentityError):
    """403: a valid credential without the right to this request."""


class UserIdRequired(IdentityError):
    """400: a caller acting for anyone (bookings:any) must name the user."""


def init_app(app: Flask, settings: IdentitySettings) -> None:
    """Resolve callers in jwt mode (before the rate limit: register this before app/web/limits.py)."""
    app.config["AUTH_MODE"] = settings.mode
    for error_class, handler in ERROR_HANDLERS.items():
        app.register_error_handler(error_class, handler)
    if settings.mode == OPEN:
        log.warning("auth_mode_open", detail="AUTH_MODE=open: the body's userId is trusted; set AUTH_MODE=jwt")
        return
    app.extensions[EXTENSION] = TokenVerifier(settings)
    app.before_request(_resolve_caller)
    if settings.development_key:
        log.warning("auth_development_key", detail="trusting only the development key; `make token USER=...`")


def jwt_mode() -> bool:
    return current_app.config.get("AUTH_MODE") == JWT


def _resolve_caller() -> None:
    """Remember the request's Caller, or why there is none; bind its sub to the log lines."""
    g.caller, g.identity_error = None, None
    if not request.path.startswith(API_PREFIX):
        return
    try:
        g.caller = _caller_from_header(request.headers.get("Authorization", ""))
    except IdentityError as error:
        g.identity_error = error
        return
    if g.caller.sub is None:
        structlog.contextvars.bind_contextvars(caller="admin_token")
    else:
        structlog.contextvars.bind_contextvars(sub=g.caller.sub)


def _caller_from_header(authorization: str) -> Caller:
    # Only the header counts: a token in the query string or the body is ignored.
    if not authorization.lower().startswith(BEARER):
        raise InvalidToken("an Authorization: Bearer <JWT> header is required")
    token = authorization[len(BEARER) :].strip()
    expected = current_app.config["ADMIN_TOKEN"]
    if expected and hmac.compare_digest(token.encode(), expected.encode()):
        return STATIC_ADMIN
    return current_app.extensions[EXTENSION].verify(token)


def current_caller() -> Caller:
    """The request's verified caller (jwt mode); raises the reason there is none."""
    if g.identity_error is not None:
        raise g.identity_error
    return g.caller


def acting_user(user_id: str | None) -> str:
    """The user a booking or cancellation is for: the body's userId, checked against the caller.

    jwt mode: absent means the token's sub; another user than the sub needs bookings:any, and a
    caller with bookings:any must name the user (it acts for others, not for itself).
    """
    if not jwt_mode():
        return user_id
    caller = _user_caller()
    if user_id is None:
        if caller.acts_for_anyone:
            raise UserIdRequired("userId is required with the bookings:any scope")
        return caller.sub
    authorize_user(user_id)
    return user_id


def authorize_user(user_id: str) -> None:
    """jwt mode: the caller must be `user_id`, or hold bookings:any (403 otherwise)."""
    if not jwt_mode():
        return
    caller = _user_caller()
    if caller.sub != user_id and not caller.acts_for_anyone:
        raise Forbidden(f"this token may act only for its own user, not {quoted(user_id)!r}")


def _user_caller() -> Caller:
    caller = current_caller()
    if caller.sub is None:
        raise Forbidden("the admin token is for the admin routes only; user routes need a user's token")
    return caller


def require_admin(view):
    """The admin routes: ADMIN_TOKEN (open mode, as v1), or in jwt mode also a token with events:admin."""
    open_mode_view = auth.require_admin(view)

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not jwt_mode():
            return open_mode_view(*args, **kwargs)
        if not current_caller().is_admin:
            raise Forbidden("this route needs the events:admin scope")
        return view(*args, **kwargs)

    return wrapper


def require_confirmer() -> None:
    """Who may confirm a hold: in open mode anyone (as v1); in jwt mode the payment backend (bookings:confirm)
    or an admin (events:admin, ADMIN_TOKEN), and not the booking's own user: a payment is not theirs to attest."""
    if not jwt_mode():
        return
    caller = current_caller()
    if not (caller.is_admin or CONFIRM_BOOKINGS in caller.scopes):
        raise Forbidden("confirming a hold needs the bookings:confirm scope (the payment backend's) or events:admin")


def scoped_idempotency_key(key: str) -> str:
    """The key as stored: in jwt mode, one per caller, so one user's key never replays another's response."""
    if not jwt_mode():
        return key
    return scope_key(current_caller().scope_id, key)


def scope_key(scope_id: str, key: str) -> str:
    """sha256 of (caller, key), hex: fixed length, within the column's 255 characters whatever the key."""
    return hashlib.sha256(json.dumps([scope_id, key]).encode()).hexdigest()


def _unauthorized(error: InvalidToken) -> Response:
    log.info("token_refused", reason=error.reason)  # the client reads only the generic detail
    response = errors.problem(401, "unauthorized", str(error))
    response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


def _forbidden(error: Forbidden) -> Response:
    return errors.problem(403, "forbidden", str(error))


def _user_id_required(error: UserIdRequired) -> Response:
    return errors.problem(400, "invalid_request", "the request is not valid; see errors", {"userId": [str(error)]})


def _provider_unavailable(error: ProviderUnavailable) -> Response:
    log.warning("identity_provider_unavailable", detail=str(error))
    response = errors.problem(503, "unavailable", "the identity provider is unavailable; retry shortly")
    response.headers["Retry-After"] = str(error.retry_after_s)
    return response


ERROR_HANDLERS = {
    InvalidToken: _unauthorized,
    Forbidden: _forbidden,
    UserIdRequired: _user_id_required,
    ProviderUnavailable: _provider_unavailable,
}
