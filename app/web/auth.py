"""Bearer-token checks: the admin endpoints' (and /metrics', app/web/metrics.py)."""

from __future__ import annotations

import functools
import hmac

from flask import current_app, request

from app.web.errors import Unauthorized

BEARER = "bearer "


def require_admin(view):
    """Refuse the request unless it carries `Authorization: Bearer <ADMIN_TOKEN>`."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not bearer_matches(request.headers.get("Authorization", ""), current_app.config["ADMIN_TOKEN"]):
            raise Unauthorized()
        return view(*args, **kwargs)

    return wrapper


def bearer_matches(authorization: str, expected: str) -> bool:
    """Whether an Authorization header's value is `Bearer <expected>` (the scheme in any case)."""
    supplied = authorization[len(BEARER) :] if authorization.lower().startswith(BEARER) else ""
    # An empty expected token must never match an absent header. Constant time, so the response
    # time tells nothing about how much of the token matched.
    return bool(expected) and hmac.compare_digest(supplied.encode(), expected.encode())
