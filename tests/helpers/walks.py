"""The walks of a feature over HTTP against `make run`'s launcher (a pytest plugin, see tests/conftest.py):
the server in AUTH_MODE=open and in AUTH_MODE=jwt, started and stopped as an operator does."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest

from tests.helpers.identity import AUDIENCE, ISSUER
from tests.helpers.live_server import Launcher, call
from tests.helpers.waiting import wait_until

ADMIN_TOKEN = "e2e-offer-walk-admin-token-0123456789"
START_DEADLINE_S = 60  # the launcher migrates and starts the web server and the dispatcher, on a shared machine
EXPIRY_PROMISE_S = 5  # contract: an offer's or a hold's expiry is processed within 5 s of its deadline
EXPIRY_DEADLINE_S = 3 * EXPIRY_PROMISE_S  # how long a wait for the sweeper may last before the test fails


@pytest.fixture(params=["open", "jwt"])
def identity(request, signing_key) -> tuple[dict, Callable[[str], str] | None]:
    """The server's identity settings, and how a user gets a token (None in open mode)."""
    if request.param == "open":
        return {"AUTH_MODE": "open"}, None
    settings = {
        "AUTH_MODE": "jwt",
        "AUTH_JWT_PUBLIC_KEY": signing_key.public_pem(),
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
    }
    return settings, signing_key.token


@pytest.fixture
def launcher(scratch, database_url, identity) -> Iterator[Launcher]:
    launcher = Launcher(scratch, database_url, ADMIN_TOKEN, identity[0]).start()
    wait_until(
        lambda: launcher.said("Serving on") or launcher.process.poll() is not None,
        "the launcher serves",
        START_DEADLINE_S,
    )
    assert launcher.said("Serving on"), launcher.messages()
    yield launcher
    launcher.process.send_signal(signal.SIGINT)  # Ctrl-C, as one stops `make run`
    assert launcher.process.wait(timeout=START_DEADLINE_S) == 0, launcher.messages()
    launcher.kill()


def moment(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def assert_refused(answer: tuple[int, dict], status: int, code: str) -> None:
    assert (answer[0], answer[1]["code"]) == (status, code), answer


@dataclass(frozen=True)
class LiveClient:
    """A client of the live server: admin calls with the static token, user calls as that user."""

    base_url: str
    token_for: Callable[[str], str] | None  # jwt mode: the user's bearer token; open mode: the body names the user

    def admin(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        status, _, parsed = call(self.base_url, method, path, body, ADMIN_TOKEN)
        return status, parsed

    def act(self, path: str, event_id: str, user: str, **fields) -> tuple[int, dict]:
        """POST `path` (book, cancel, accept, decline) for `user`, with `fields` in the body (items, ...)."""
        body = {"eventId": event_id, **fields} if self.token_for else {"eventId": event_id, "userId": user, **fields}
        status, _, parsed = call(self.base_url, "POST", path, body, self._token(user))
        return status, parsed

    def booking(self, event_id: str, user: str) -> dict:
        status, _, parsed = call(
            self.base_url, "GET", f"/api/booking-status/{event_id}/{user}", token=self._token(user)
        )
        assert status == 200, parsed
        return parsed["booking"]

    def holders(self, event_id: str, status: str) -> list[str]:
        status_code, page = self.admin("GET", f"/api/events/{event_id}/bookings?status={status}&limit=100")
        assert status_code == 200, page
        return [booking["userId"] for booking in page["bookings"]]

    def ledger(self, event_id: str) -> list[dict]:
        status, page = self.admin("GET", f"/api/events/{event_id}/history?limit=1000")
        assert status == 200, page
        return page["entries"]

    def _token(self, user: str) -> str | None:
        return self.token_for(user) if self.token_for else None
