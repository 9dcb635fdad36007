"""One signed POST to a receiver, over a connection to an address the SSRF guard has just checked.

The URL's host is resolved once, here; each address is checked (app/notifications/destinations.py)
and the request goes to the first one, by IP, with the original name in the Host header and, for
https, as the TLS server name (SNI), against which the certificate is verified. httpx therefore never
resolves the name itself, and cannot be sent elsewhere by a second answer (DNS rebinding).
Redirects are not followed: a 3xx is an answer like any other non-2xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx
from standardwebhooks.webhooks import Webhook as Signer

from app.notifications.destinations import Resolver, UnsafeDestination, host_and_port, public_address, resolve

USER_AGENT = "booking-service-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """What one try came to: the status if the receiver answered, else why not."""

    status: int | None
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender:
    def __init__(self, timeout_s: float, allow_private: bool, resolver: Resolver = resolve) -> None:
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False)
        self._allow_private, self._resolver = allow_private, resolver

    def close(self) -> None:
        self._client.close()

    def send(self, url: str, secret: str, message_key: str, body: str) -> Outcome:
        """POST `body` to `url`, signed with `secret` the Standard Webhooks way; never raises for the network."""
        try:
            request = self._pinned_request(url, signed_headers(secret, message_key, body), body)
            response = self._client.send(request)
        except UnsafeDestination as error:
            return Outcome(None, f"refused: {error}")
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            return Outcome(None, f"{type(error).__name__}: {error}"[:500])
        return Outcome(response.status_code, None, retry_after_s(response.headers.get("Retry-After")))

    def _pinned_request(self, url: str, headers: dict, body: str) -> httpx.Request:
        host, port = host_and_port(url)
        address = self._checked_address(host, port)
        target = httpx.URL(url)
        extensions = {"sni_hostname": host} if target.scheme == "https" else {}
        headers = {**headers, "Host": target.netloc.decode("ascii"), "User-Agent": USER_AGENT,
                   "Content-Type": "application/json"}
        return self._client.build_request(
            "POST", target.copy_with(host=address), content=body.encode(), headers=headers, extensions=extensions
        )

    def _checked_address(self, host: str, port: int) -> str:
        if self._allow_private:
            return self._resolver(host, port)[0]
        return public_address(host, port, self._resolver)


def signed_headers(secret: str, message_key: str, body: str) -> dict:
    """webhook-id, webhook-timestamp (now, Unix seconds) and webhook-signature (`v1,<base64 HMAC>`)."""
    now = datetime.now(timezone.utc)
    return {
        "webhook-id": message_key,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(secret).sign(message_key, now, body),
    }


def retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds: a number of seconds, or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
