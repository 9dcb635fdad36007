"""The development signing key, and tokens signed with it: `make token USER=alice [SCOPES=...]`.

With AUTH_MODE=jwt and no key source set (no AUTH_JWKS_URL, AUTH_JWT_PUBLIC_KEY or AUTH_JWT_SECRET),
outside production, the service trusts only an RS256 key of its own, made on first use under
instance/ (app/config/development_key.py). This module mints tokens with it, or with AUTH_JWT_SECRET when that is the
key source, so that the API can be tried on a fresh clone without an identity provider. It also
publishes the key as a JWK set, which `make cluster` serves to its instances. All of it is refused
with APP_ENV=production.

    python -m app.operations.dev_keys token alice --scopes "bookings:any" [--ttl 3600]
    python -m app.operations.dev_keys jwks
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from dotenv import load_dotenv

from app.config.development_key import (
    DEV_ALGORITHM,
    DEV_AUDIENCE,
    DEV_ISSUER,
    private_key,
    public_key_pem,
    public_pem,
)
from app.config.instance import INSTANCE_DIR, PROJECT_ROOT
from app.config.production import PRODUCTION

DEFAULT_TTL_S = 3600


def jwk_set(public_pem: str) -> dict:
    """The key as a JWK set, its kid the RFC 7638 thumbprint, as an identity provider would publish it."""
    public = serialization.load_pem_public_key(public_pem.encode())
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    return {"keys": [{**jwk, "kid": thumbprint(jwk), "alg": DEV_ALGORITHM, "use": "sig"}]}


def thumbprint(jwk: dict) -> str:
    canonical = json.dumps({name: jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def claims(
    user: str, scopes: str = "", ttl_s: int = DEFAULT_TTL_S, issuer: str = DEV_ISSUER, audience: str = DEV_AUDIENCE
) -> dict:
    now = int(time.time())
    body = {"iss": issuer, "aud": audience, "sub": user, "iat": now, "exp": now + ttl_s}
    return {**body, "scope": scopes} if scopes else body


def mint(token_claims: dict, instance_dir: Path = INSTANCE_DIR, secret: str | None = None) -> str:
    """A token with `token_claims`: HS256 with `secret` if given, else RS256 with the development key."""
    if secret:
        return jwt.encode(token_claims, secret, algorithm="HS256")
    return signer(instance_dir)(token_claims)


def signer(instance_dir: Path = INSTANCE_DIR) -> Callable[[dict], str]:
    """Signs claims with the development key, read once: reading it costs ~50 ms, a signature ~0.3 ms."""
    key = private_key(instance_dir)
    kid = jwk_set(public_pem(key))["keys"][0]["kid"]
    return lambda token_claims: jwt.encode(token_claims, key, algorithm=DEV_ALGORITHM, headers={"kid": kid})


def main(argv: list[str] | None = None, environ=None) -> int:
    args = _parser().parse_args(argv)
    if environ is None:
        load_dotenv(PROJECT_ROOT / ".env", override=False)
    env = os.environ if environ is None else environ
    if (env.get("APP_ENV") or "").strip().lower() == PRODUCTION:
        print(
            f"refused: APP_ENV={PRODUCTION} has no development key; tokens come from the identity provider",
            file=sys.stderr,
        )
        return 2
    if env.get("AUTH_JWKS_URL") or env.get("AUTH_JWT_PUBLIC_KEY"):
        print(
            "refused: AUTH_JWKS_URL / AUTH_JWT_PUBLIC_KEY is set, so the service trusts your identity "
            "provider's keys, not the development key",
            file=sys.stderr,
        )
        return 2
    if args.command == "jwks":
        print(json.dumps(jwk_set(public_key_pem(INSTANCE_DIR))))
        return 0
    token_claims = claims(
        args.user,
        " ".join(args.scopes.split()),
        args.ttl,
        env.get("AUTH_ISSUER") or DEV_ISSUER,
        env.get("AUTH_AUDIENCE") or DEV_AUDIENCE,
    )
    print(mint(token_claims, INSTANCE_DIR, secret=env.get("AUTH_JWT_SECRET") or None))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.operations.dev_keys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print a token for USER")
    token.add_argument("user")
    token.add_argument("--scopes", default="", help='space-separated, e.g. "bookings:any events:admin"')
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, help="seconds until it expires")
    commands.add_parser("jwks", help="print the development public key as a JWK set")
    return parser


if __name__ == "__main__":
    sys.exit(main())
