"""Signing secrets: made here, shown once, and stored only as Fernet ciphertext.

The key comes from WEBHOOK_SECRET_KEY (app/config/__init__.py), never from the database, so that a dump of
the database alone reveals no secret. Several comma-separated keys rotate: the first encrypts,
any of them decrypts (MultiFernet).
"""

from __future__ import annotations

import base64
import secrets as random

from cryptography.fernet import Fernet, MultiFernet

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # an HMAC-SHA256 key as long as its output


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(SECRET_BYTES)).decode()


class SecretBox:
    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ValueError("no webhook secret key: set WEBHOOK_SECRET_KEY")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, ciphertext: bytes) -> str:
        return self._fernet.decrypt(bytes(ciphertext)).decode()
