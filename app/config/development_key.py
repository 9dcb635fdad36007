"""The development signing key: with AUTH_MODE=jwt and no key source, outside production, the service
trusts only an RS256 key of its own, made on first use under instance/. `make token` signs with it
(app/operations/dev_keys.py); the identity settings (identity.py) read its public half."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.config.instance import INSTANCE_DIR, store_once, stored_text

DEV_KEY_FILE = "jwt_dev_key.pem"
DEV_ISSUER = "booking-dev"
DEV_AUDIENCE = "booking-api"
DEV_ALGORITHM = "RS256"


def private_key(instance_dir: Path = INSTANCE_DIR) -> rsa.RSAPrivateKey:
    """The development key, made and stored under `instance_dir` on first use (whole, mode 0600)."""
    path = instance_dir / DEV_KEY_FILE
    instance_dir.mkdir(parents=True, exist_ok=True)
    stored = stored_text(path) or store_once(path, _new_key_pem())  # another process's key if it stored first
    return serialization.load_pem_private_key(stored.encode(), password=None)


def _new_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_key_pem(instance_dir: Path = INSTANCE_DIR) -> str:
    return public_pem(private_key(instance_dir))


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
