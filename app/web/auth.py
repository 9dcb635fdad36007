"""Admin bearer-token check."""

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
        if not _is_admin(request.headers.get("Authorization", "")):
            raise Unauthorized()
        return view(*args, **kwargs)

    return wrapper


def _is_admin(authorization: str) -> bool:
    supplied = authorization[len(BEARER):] if authorization.lower().startswith(BEARER) else ""
    expected = current_app.config["ADMIN_TOKEN"]
    # An empty expected token must never match an absent header. Constant time, so the response
    # time tells nothing about how much of the token matched.
    return bool(expected) and hmac.compare_digest(supplied.encode(), expected.encode())
