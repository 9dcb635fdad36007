"""A black-box client of the service over HTTP, speaking as many users from many addresses would.

Each simulated user can have a loopback address of its own (the whole of 127.0.0.0/8 is loopback on
Linux), so that the per-client rate limit, keyed on the address the balancer reports, sees them as
the distinct clients they stand for.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

# What a client cannot tell from a refusal: the request may or may not have taken effect.
AMBIGUOUS_STATUSES = {None, 502, 503, 504}


@dataclass(frozen=True)
class Reply:
    """One HTTP exchange; `status` None means no response at all (refused, reset, timed out)."""

    status: int | None
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    error: str | None = None

    @property
    def ambiguous(self) -> bool:
        return self.status in AMBIGUOUS_STATUSES

    @property
    def retry_later(self) -> bool:
        """Told nothing, or told that the same Idempotency-Key is still being processed."""
        return self.ambiguous or self.code == "request_in_progress"

    @property
    def booking(self) -> dict:
        return self.body["booking"]

    @property
    def code(self) -> str | None:
        return (self.body or {}).get("code")


class Addresses:
    """Distinct loopback addresses, a new one per call; a random /16 per run keeps runs' limits apart."""

    def __init__(self) -> None:
        self._prefix = f"127.{random.randint(1, 254)}"
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            number = next(self._numbers)
        return f"{self._prefix}.{number // 250}.{number % 250 + 1}"


class Api:
    """The service's endpoints, called from one source address."""

    def __init__(
        self,
        base_url: str,
        source_ip: str = "127.0.0.1",
        admin_token: str | None = None,
        timeout: float = 15,
        tokens: Callable[[str], str] | None = None,
    ) -> None:
        """`tokens(user)` is the bearer token a user's requests carry (AUTH_MODE=jwt); None sends none."""
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.source_ip, self.admin_token, self.timeout, self.tokens = source_ip, admin_token, timeout, tokens

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> Reply:
        """One request on a fresh connection; a transport failure is a Reply with status None."""
        headers = dict(headers or {})
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(
            self.host, self.port, timeout=self.timeout, source_address=(self.source_ip, 0)
        )
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return Reply(None, error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        return Reply(response.status, _json_or_none(raw), {k.lower(): v for k, v in response.getheaders()})

    def initialize(self, total_tickets: int, name: str | None = None) -> str:
        """Open an event (admin); its id."""
        body = {"totalTickets": total_tickets, **({"name": name} if name else {})}
        reply = self.call("POST", "/api/initialize", body, {"Authorization": f"Bearer {self.admin_token}"})
        assert reply.status == 201, reply
        return reply.body["event"]["id"]

    def register_webhook(self, url: str, event_id: str) -> dict:
        """A webhook for one event's changes (admin); its representation, with the signing secret."""
        body = {"url": url, "eventId": event_id}
        reply = self.call("POST", "/api/webhooks", body, {"Authorization": f"Bearer {self.admin_token}"})
        assert reply.status == 201, reply
        return reply.body["webhook"]

    def book(self, event_id: str, user_id: str, headers: dict | None = None) -> Reply:
        return self.call("POST", "/api/book", {"eventId": event_id, "userId": user_id}, self._as(user_id, headers))

    def cancel(self, event_id: str, user_id: str, headers: dict | None = None) -> Reply:
        return self.call("POST", "/api/cancel", {"eventId": event_id, "userId": user_id}, self._as(user_id, headers))

    def status(self, event_id: str) -> Reply:
        return self.call("GET", f"/api/status/{event_id}")

    def booking_status(self, event_id: str, user_id: str) -> Reply:
        return self.call("GET", f"/api/booking-status/{event_id}/{quote(user_id, safe='')}", headers=self._as(user_id))

    def _as(self, user_id: str, headers: dict | None = None) -> dict:
        """`headers`, with the user's own token when the service checks tokens."""
        if self.tokens is None:
            return dict(headers or {})
        return {"Authorization": f"Bearer {self.tokens(user_id)}", **(headers or {})}


def _json_or_none(raw: bytes) -> dict | None:
    try:
        return json.loads(raw)
    except ValueError:  # HAProxy's own error pages are HTML
        return None
