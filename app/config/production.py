"""Production mode (APP_ENV=production) and what it refuses to start with."""

from __future__ import annotations

PRODUCTION = "production"
MIN_ADMIN_TOKEN_LENGTH = 32
PLACEHOLDER_TOKEN = "change-me"


class InsecureConfiguration(RuntimeError):
    """A setting that production mode refuses."""


def check_admin_token(app_env: str, token: str) -> None:
    """In production mode, refuse a short admin token or one that is still the placeholder."""
    if app_env.strip().lower() != PRODUCTION:
        return
    if len(token) < MIN_ADMIN_TOKEN_LENGTH or PLACEHOLDER_TOKEN in token.lower():
        raise InsecureConfiguration(
            f"APP_ENV={PRODUCTION} refuses an ADMIN_TOKEN shorter than {MIN_ADMIN_TOKEN_LENGTH} characters or "
            "holding the example's placeholder; make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
