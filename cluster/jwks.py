"""The cluster's identity provider, on loopback: the development key (app/operations/dev_keys.py) published
as a JWK set over HTTP, which the instances fetch as they would a real provider's (AUTH_JWKS_URL).

It is the key of instance/, the one `make token` signs with, so that its tokens work against the
cluster as they do against `make run`.
"""

from __future__ import annotations

import functools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.config import INSTANCE_DIR
from app.operations import dev_keys

JWKS_PATH = "/jwks.json"


class JwksServer:
    """http.server serving the JWK set at JWKS_PATH, in a thread of the cluster's process."""

    def __init__(self, instance_dir=INSTANCE_DIR) -> None:
        self.instance_dir = instance_dir
        body = json.dumps(dev_keys.jwk_set(dev_keys.public_key_pem(instance_dir))).encode()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_JwksHandler, body))
        self._thread = threading.Thread(target=self._server.serve_forever, name="jwks", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{JWKS_PATH}"

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def instance_env(self) -> dict[str, str]:
        """What an instance needs to trust this provider's tokens."""
        return {
            "AUTH_MODE": "jwt",
            "AUTH_JWKS_URL": self.url,
            "AUTH_ISSUER": dev_keys.DEV_ISSUER,
            "AUTH_AUDIENCE": dev_keys.DEV_AUDIENCE,
            "AUTH_JWT_PUBLIC_KEY": "",
            "AUTH_JWT_SECRET": "",
        }

    def token(self, user: str, scopes: str = "") -> str:
        """A token for `user`, valid for a day: longer than any cluster test run."""
        return _token(self.instance_dir, user, scopes)


@functools.lru_cache(maxsize=4096)  # an RS256 signature costs ~1 ms: once per user is enough
def _token(instance_dir, user: str, scopes: str) -> str:
    return dev_keys.mint(dev_keys.claims(user, scopes, ttl_s=86400), instance_dir)


class _JwksHandler(BaseHTTPRequestHandler):
    def __init__(self, body: bytes, *args, **kwargs) -> None:
        self.body = body
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path != JWKS_PATH:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_args) -> None:
        pass  # the instances' own logs say what they fetched
