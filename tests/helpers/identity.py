"""Fixtures for AUTH_MODE=jwt: an identity provider of the tests' own (RSA keys, a real JWKS over
HTTP with pytest-httpserver), tokens it signs, and apps that trust it. Loaded by tests/conftest.py as a plugin."""

from __future__ import annotations

from dataclasses import dataclass

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.config.identity import JWT, IdentitySettings
from app.operations import dev_keys
from tests.helpers.api import apps_from

ISSUER = "https://idp.test/"
AUDIENCE = "booking-api-test"
JWKS_PATH = "/.well-known/jwks.json"


@dataclass(frozen=True)
class SigningKey:
    """An RSA key of the test identity provider, published under `kid`."""

    kid: str
    private: rsa.RSAPrivateKey

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def jwk(self) -> dict:
        return {
            **jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True),
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
        }

    def token(self, user: str, scopes: str = "", **claims) -> str:
        """A token for `user` as the provider would issue it; `claims` override or (None) remove the defaults."""
        body = {**dev_keys.claims(user, scopes, issuer=ISSUER, audience=AUDIENCE), **claims}
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self.private, algorithm="RS256", headers={"kid": self.kid})


def new_signing_key(kid: str) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def jwks_of(*keys: SigningKey) -> dict:
    return {"keys": [key.jwk() for key in keys]}


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return new_signing_key("key-1")


@pytest.fixture(scope="session")
def foreign_key() -> SigningKey:
    """A key that no app trusts, under the trusted key's kid."""
    return new_signing_key("key-1")


@pytest.fixture(scope="session")
def jwt_settings(signing_key) -> IdentitySettings:
    """jwt mode trusting `signing_key` as a PEM public key (AUTH_JWT_PUBLIC_KEY)."""
    return IdentitySettings(mode=JWT, public_key_pem=signing_key.public_pem(), issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture(scope="session")
def jwt_app(config, jwt_settings):
    with apps_from(config) as build:
        yield build(identity=jwt_settings)


@pytest.fixture
def jwt_client(jwt_app):
    return jwt_app.test_client()


@pytest.fixture
def jwks_app(httpserver, make_app):
    """An app whose keys come from a JWKS served over HTTP by pytest-httpserver; `publish` sets that set."""

    def make(refetch_s: float = 30.0):
        settings = IdentitySettings(
            mode=JWT, jwks_url=httpserver.url_for(JWKS_PATH), issuer=ISSUER, audience=AUDIENCE, jwks_refetch_s=refetch_s
        )
        return make_app(identity=settings)

    return make


@pytest.fixture
def publish(httpserver):
    """Serve `keys` as the JWK set from now on (replacing what was served)."""

    def serve(*keys: SigningKey) -> None:
        httpserver.clear_all_handlers()
        httpserver.expect_request(JWKS_PATH).respond_with_json(jwks_of(*keys))

    return serve
