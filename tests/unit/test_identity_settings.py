"""AUTH_* settings: the modes, the key sources, what production refuses, and the development key."""

from __future__ import annotations

import json
import os
import stat

import jwt
import pytest

from app.config.development_key import DEV_KEY_FILE
from app.config.identity import IdentitySettings
from app.config.production import InsecureConfiguration
from app.operations import dev_keys
from app.web.tokens import InvalidToken, TokenVerifier

PEM_ENV = {"AUTH_ISSUER": "https://idp.test/", "AUTH_AUDIENCE": "api"}


def settings(env: dict, tmp_path, app_env: str = "development") -> IdentitySettings:
    return IdentitySettings.from_env(env, app_env, tmp_path)


def test_open_is_the_default_outside_production(tmp_path):
    assert settings({}, tmp_path).mode == "open"


def test_production_refuses_to_start_without_an_explicit_auth_mode(tmp_path):
    with pytest.raises(InsecureConfiguration, match="AUTH_MODE"):
        settings({}, tmp_path, "production")


def test_production_accepts_open_when_it_is_explicit(tmp_path):
    assert settings({"AUTH_MODE": "open"}, tmp_path, "production").mode == "open"


def test_an_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="AUTH_MODE"):
        settings({"AUTH_MODE": "oauth"}, tmp_path)


@pytest.mark.parametrize(
    "env",
    [
        {"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": "s" * 32, **PEM_ENV},
        {"AUTH_MODE": "jwt"},
    ],
    ids=["hs256-secret", "development-key"],
)
def test_production_refuses_the_development_key_sources(tmp_path, env):
    with pytest.raises(InsecureConfiguration, match="AUTH_JWKS_URL"):
        settings(env, tmp_path, "production")


def test_jwks_mode_needs_issuer_and_audience(tmp_path):
    with pytest.raises(ValueError, match="AUTH_ISSUER"):
        settings({"AUTH_MODE": "jwt", "AUTH_JWKS_URL": "https://idp.test/jwks"}, tmp_path)


def test_jwks_mode_defaults_to_rs256_and_es256(tmp_path):
    env = {"AUTH_MODE": "jwt", "AUTH_JWKS_URL": "https://idp.test/jwks", **PEM_ENV}
    assert settings(env, tmp_path, "production").algorithms == ("RS256", "ES256")


def test_a_secret_defaults_the_algorithms_to_hs256(tmp_path):
    assert settings({"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": "s" * 32, **PEM_ENV}, tmp_path).algorithms == ("HS256",)


@pytest.mark.parametrize(
    ("source", "algorithms"),
    [
        ({"AUTH_JWKS_URL": "https://idp.test/jwks"}, "RS256,none"),
        ({"AUTH_JWKS_URL": "https://idp.test/jwks"}, "HS256"),
        ({"AUTH_JWT_SECRET": "s" * 32}, "RS256"),
        ({"AUTH_JWKS_URL": "https://idp.test/jwks"}, "RS999"),
    ],
)
def test_algorithms_that_do_not_fit_the_key_source_are_refused(tmp_path, source, algorithms):
    with pytest.raises(ValueError, match="AUTH_ALGORITHMS"):
        settings({"AUTH_MODE": "jwt", "AUTH_ALGORITHMS": algorithms, **source, **PEM_ENV}, tmp_path)


def test_a_public_key_may_be_given_as_a_file(tmp_path):
    pem_file = tmp_path / "idp.pem"
    pem_file.write_text(dev_keys.public_key_pem(tmp_path))
    loaded = settings({"AUTH_MODE": "jwt", "AUTH_JWT_PUBLIC_KEY": str(pem_file), **PEM_ENV}, tmp_path)
    assert loaded.public_key_pem == pem_file.read_text() and not loaded.development_key


def test_without_a_key_source_development_makes_and_trusts_its_own_key(tmp_path):
    loaded = settings({"AUTH_MODE": "jwt"}, tmp_path)
    key_file = tmp_path / DEV_KEY_FILE
    assert loaded.development_key and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert (loaded.issuer, loaded.audience) == (dev_keys.DEV_ISSUER, dev_keys.DEV_AUDIENCE)
    token = dev_keys.mint(dev_keys.claims("alice", "bookings:any"), tmp_path)
    caller = TokenVerifier(loaded).verify(token)
    assert caller.sub == "alice" and caller.acts_for_anyone


def test_the_development_key_is_made_once(tmp_path):
    assert dev_keys.public_key_pem(tmp_path) == dev_keys.public_key_pem(tmp_path)


def test_a_token_signed_with_the_secret_verifies_in_secret_mode(tmp_path):
    loaded = settings({"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": "s" * 32, **PEM_ENV}, tmp_path)
    token = dev_keys.mint(dev_keys.claims("bob", issuer="https://idp.test/", audience="api"), secret="s" * 32)
    assert TokenVerifier(loaded).verify(token).sub == "bob"
    with pytest.raises(InvalidToken):
        TokenVerifier(loaded).verify(dev_keys.mint(dev_keys.claims("bob"), secret="t" * 32))


def test_make_token_prints_a_token_for_the_user_and_scopes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dev_keys, "INSTANCE_DIR", tmp_path)
    assert dev_keys.main(["token", "alice", "--scopes", "bookings:any  events:admin"], environ={}) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert (claims["sub"], claims["scope"], claims["iss"]) == (
        "alice",
        "bookings:any events:admin",
        dev_keys.DEV_ISSUER,
    )


@pytest.mark.parametrize("env", [{"APP_ENV": "production"}, {"AUTH_JWKS_URL": "https://idp.test/jwks"}])
def test_make_token_is_refused_in_production_and_with_a_real_provider(env, capsys):
    assert dev_keys.main(["token", "alice"], environ=env) == 2
    assert "refused" in capsys.readouterr().err


def test_the_jwks_command_prints_the_development_key_set(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dev_keys, "INSTANCE_DIR", tmp_path)
    assert dev_keys.main(["jwks"], environ={}) == 0
    (jwk,) = json.loads(capsys.readouterr().out)["keys"]
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")


def test_the_development_jwks_carries_the_kid_of_minted_tokens(tmp_path):
    token = dev_keys.mint(dev_keys.claims("alice"), tmp_path)
    (jwk,) = dev_keys.jwk_set(dev_keys.public_key_pem(tmp_path))["keys"]
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    assert jwt.decode(token, jwt.PyJWK(jwk), audience=dev_keys.DEV_AUDIENCE)["sub"] == "alice"


def test_the_config_reads_the_identity_settings_from_the_environment():
    from app.config import Config

    env = {
        "DATABASE_URL": "postgresql://u@h/db",
        "ADMIN_TOKEN": "k" * 32,
        "AUTH_MODE": "jwt",
        "AUTH_JWKS_URL": "https://idp.test/jwks",
        **PEM_ENV,
    }
    assert Config.from_env(env).identity.jwks_url == "https://idp.test/jwks"
