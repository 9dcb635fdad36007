"""The identity settings (AUTH_*): AUTH_MODE and, in jwt mode, where the keys come from and what a token
must say. app/web/tokens.py verifies tokens with them.

The keys come from one source, in this order of precedence:
- AUTH_JWKS_URL: an identity provider's JWK set (fetched and kept by app/web/tokens.py);
- AUTH_JWT_PUBLIC_KEY: one PEM public key (the text itself, or the path of a file holding it);
- AUTH_JWT_SECRET: an HS256 shared secret, for development only (refused in production);
- none of them, in development: a signing key of the service's own under instance/, which
  `make token` uses too (development_key.py).
The algorithms come from AUTH_ALGORITHMS, never from the token's header, and never include `none`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jwt

from app.config.development_key import DEV_AUDIENCE, DEV_ISSUER
from app.config.development_key import public_key_pem as development_key_pem
from app.config.production import PRODUCTION, InsecureConfiguration

OPEN, JWT = "open", "jwt"
DEFAULT_ALGORITHMS = ("RS256", "ES256")
SECRET_ALGORITHMS = ("HS256",)
JWKS_REFETCH_S = 30.0


@dataclass(frozen=True)
class IdentitySettings:
    """AUTH_MODE and, in jwt mode, where the keys come from and what a token must say."""

    mode: str = OPEN
    jwks_url: str | None = None
    public_key_pem: str | None = None
    secret: str | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    development_key: bool = False  # the key is the service's own (development_key.py)
    jwks_refetch_s: float = JWKS_REFETCH_S

    @classmethod
    def from_env(cls, env, app_env: str, instance_dir: Path) -> IdentitySettings:
        """The settings in `env`; refuses what production must not run with (InsecureConfiguration)."""
        mode = (env.get("AUTH_MODE") or "").strip().lower()
        if app_env == PRODUCTION and not mode:
            raise InsecureConfiguration(f"APP_ENV={PRODUCTION} needs AUTH_MODE set explicitly: {JWT} or {OPEN}")
        if mode not in ("", OPEN, JWT):
            raise ValueError(f"AUTH_MODE must be {OPEN} or {JWT}, not {mode!r}")
        if mode != JWT:
            return cls()
        return _jwt_settings(env, app_env, instance_dir)


def _jwt_settings(env, app_env: str, instance_dir: Path) -> IdentitySettings:
    sources = {
        name: (env.get(name) or "").strip() or None
        for name in ("AUTH_JWKS_URL", "AUTH_JWT_PUBLIC_KEY", "AUTH_JWT_SECRET")
    }
    jwks_url, public_key, secret = sources.values()
    development_key = not any(sources.values())
    if app_env == PRODUCTION and (secret and not (jwks_url or public_key) or development_key):
        raise InsecureConfiguration(
            f"APP_ENV={PRODUCTION} refuses AUTH_JWT_SECRET and the development key: set AUTH_JWKS_URL or AUTH_JWT_PUBLIC_KEY"
        )
    if development_key:
        public_key = development_key_pem(instance_dir)  # the service's own key, made on first use
    elif public_key and not public_key.startswith("-----BEGIN"):
        public_key = Path(public_key).read_text()
    symmetric = bool(secret) and not (jwks_url or public_key)
    return IdentitySettings(
        mode=JWT,
        jwks_url=jwks_url,
        public_key_pem=None if jwks_url else public_key,
        secret=secret if symmetric else None,
        issuer=_required(env, "AUTH_ISSUER", development_key and DEV_ISSUER),
        audience=_required(env, "AUTH_AUDIENCE", development_key and DEV_AUDIENCE),
        algorithms=_algorithms(env, SECRET_ALGORITHMS if symmetric else DEFAULT_ALGORITHMS, symmetric),
        development_key=development_key,
    )


def _required(env, name: str, default: str | None) -> str:
    value = (env.get(name) or "").strip() or default
    if not value:
        raise ValueError(f"AUTH_MODE={JWT} needs {name}: tokens are checked against it")
    return value


def _algorithms(env, default: tuple[str, ...], symmetric: bool) -> tuple[str, ...]:
    """AUTH_ALGORITHMS, comma-separated: HMAC ones with a secret only, public-key ones with keys only."""
    value = (env.get("AUTH_ALGORITHMS") or "").strip()
    algorithms = tuple(name.strip() for name in value.split(",") if name.strip()) if value else default
    for name in algorithms:
        if name.lower() == "none" or name not in jwt.algorithms.get_default_algorithms():
            raise ValueError(f"AUTH_ALGORITHMS: {name!r} is not an algorithm this service accepts")
        if name.startswith("HS") != symmetric:
            raise ValueError(f"AUTH_ALGORITHMS: {name} does not fit the key source (HS* only with AUTH_JWT_SECRET)")
    return algorithms
