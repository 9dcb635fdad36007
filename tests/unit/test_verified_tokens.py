"""The verified-token cache of app/web/tokens.py: a token that verified answers until its exp plus the leeway."""

from __future__ import annotations

import time

from app.config.identity import IdentitySettings
from app.operations import dev_keys
from app.web.tokens import Caller, TokenVerifier, VerifiedTokens

ALICE = Caller(sub="alice", scopes=frozenset())
SECRET = "s" * 32


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_remembered_until_its_deadline_and_not_at_it():
    clock = Clock(100.0)
    verified = VerifiedTokens(4, clock)
    verified.put("token-a", ALICE, valid_until=130.0)
    clock.now = 129.9
    assert verified.get("token-a") == ALICE
    clock.now = 130.0
    assert verified.get("token-a") is None


def test_a_full_cache_forgets_its_oldest_token_first():
    verified = VerifiedTokens(2, Clock(0.0))
    for token in ("token-a", "token-b", "token-c"):
        verified.put(token, ALICE, valid_until=10.0)
    assert [verified.get(token) for token in ("token-a", "token-b", "token-c")] == [None, ALICE, ALICE]


def test_a_token_whose_exp_is_a_numeric_string_still_verifies_as_pyjwt_accepts_it():
    settings = IdentitySettings(
        mode="jwt", secret=SECRET, issuer=dev_keys.DEV_ISSUER, audience=dev_keys.DEV_AUDIENCE, algorithms=("HS256",)
    )
    token = dev_keys.mint({**dev_keys.claims("alice"), "exp": str(int(time.time()) + 600)}, secret=SECRET)
    verifier = TokenVerifier(settings)
    assert [verifier.verify(token).sub for _ in range(2)] == ["alice", "alice"]  # verified, then remembered
