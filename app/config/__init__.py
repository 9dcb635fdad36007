"""Configuration read from the environment (and `.env`), with the contract's defaults.

The bottom layer: it imports nothing else of the app. Beside `Config`: production.py (what APP_ENV=production
refuses), identity.py (AUTH_*), instance.py (the files made under instance/), development_key.py.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.fernet import Fernet
from dotenv import load_dotenv
from limits import parse_many

from app.config.identity import IdentitySettings
from app.config.instance import INSTANCE_DIR, PROJECT_ROOT, store_once, stored_text
from app.config.production import PRODUCTION, InsecureConfiguration, check_admin_token

ADMIN_TOKEN_FILE = "admin_token"
WEBHOOK_KEY_FILE = "webhook_secret_key"


@dataclass(frozen=True)
class Config:
    """Everything the app reads from its environment; tests build one directly."""

    database_url: str
    admin_token: str
    # The bearer token /metrics wants (app/web/metrics.py); unset: the admin token in production, none elsewhere.
    metrics_token: str = ""
    rate_limit: str = "300 per minute"
    rate_limit_write: str = "60 per minute"
    rate_limit_storage_uri: str = "memory://"
    rate_limit_key_prefix: str = "booking"
    trusted_proxies: int = 0
    cors_origins: tuple[str, ...] = ()
    app_env: str = "development"
    log_level: str = "INFO"
    max_body_bytes: int = 65536
    db_pool_size: int = 8
    db_connect_timeout_s: int = 3
    # The two timeouts: None means the app sets none and the server's default applies. Behind PgBouncer
    # in transaction pooling mode that is the way (see docs/scaling.md): the bouncer refuses libpq's
    # per-connection `options`, so they are set on the server with ALTER DATABASE/ROLE ... SET.
    db_statement_timeout_ms: int | None = 10_000
    # Longest wait for a row lock: an event's lock on a hot event, or a repeat of an Idempotency-Key
    # waiting for its first request (then 409 request_in_progress). Below the statement timeout.
    db_lock_timeout_ms: int | None = 5_000
    idempotency_retention_s: int = 24 * 3600  # IDEMPOTENCY_RETENTION, default 24h
    # BODY_TIMEOUT: a request body must arrive whole within this of its headers (gunicorn_worker.py).
    # 64 KiB (MAX_BODY_BYTES) in 10 s is 52 kbit/s, a slow mobile link; a client slower than that is
    # more likely one holding connections open on purpose.
    body_timeout_s: int = 10
    # Per worker: writes running at once, and how long a write waits for reads in progress (app/web/admission.py).
    write_concurrency: int = 6
    read_priority_ms: int = 50
    # Webhooks (app/notifications, docs/webhooks.md). The secret keys: Fernet keys, the first encrypts.
    webhook_secret_keys: tuple[str, ...] = ()
    webhook_allow_private: bool = False
    webhook_timeout_s: float = 10.0
    webhook_retry_schedule: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    webhook_retention_s: int = 7 * 86400  # delivered messages are purged after this
    webhook_concurrency: int = 16  # sends in flight per dispatcher
    webhook_per_receiver: int = 4  # of which at most this many to one webhook
    webhook_per_host: int = 8  # and to one host, whatever webhooks point at it
    webhook_poll_interval_s: float = 0.2
    identity: IdentitySettings = IdentitySettings()  # AUTH_MODE and its keys (identity.py)

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Config:
        """Build the config from `environ` (default: the process environment, completed by `.env`)."""
        if environ is None:
            load_dotenv(PROJECT_ROOT / ".env", override=False)  # a variable already set wins
        env = os.environ if environ is None else environ
        if not env.get("DATABASE_URL"):
            raise RuntimeError("DATABASE_URL is not set; `make run` starts an embedded PostgreSQL for you")
        config = cls(
            database_url=normalise_database_url(env["DATABASE_URL"]),
            admin_token=env.get("ADMIN_TOKEN") or resolve_admin_token(INSTANCE_DIR),
            metrics_token=env.get("METRICS_TOKEN", "").strip(),
            rate_limit=_rate_limit(env, "RATE_LIMIT", cls.rate_limit),
            rate_limit_write=_rate_limit(env, "RATE_LIMIT_WRITE", cls.rate_limit_write),
            rate_limit_storage_uri=env.get("RATE_LIMIT_STORAGE_URI") or cls.rate_limit_storage_uri,
            rate_limit_key_prefix=env.get("RATE_LIMIT_KEY_PREFIX") or cls.rate_limit_key_prefix,
            trusted_proxies=_whole_number(env, "TRUSTED_PROXIES", cls.trusted_proxies),
            cors_origins=tuple(origin.strip() for origin in env.get("CORS_ORIGINS", "").split(",") if origin.strip()),
            app_env=(env.get("APP_ENV") or cls.app_env).strip().lower(),
            log_level=env.get("LOG_LEVEL", cls.log_level).upper(),
            max_body_bytes=_whole_number(env, "MAX_BODY_BYTES", cls.max_body_bytes),
            db_pool_size=_whole_number(env, "DB_POOL_SIZE", cls.db_pool_size),
            db_statement_timeout_ms=_optional_int(env, "DB_STATEMENT_TIMEOUT_MS", cls.db_statement_timeout_ms),
            db_lock_timeout_ms=_optional_int(env, "DB_LOCK_TIMEOUT_MS", cls.db_lock_timeout_ms),
            idempotency_retention_s=_duration(env, "IDEMPOTENCY_RETENTION", cls.idempotency_retention_s),
            body_timeout_s=_duration(env, "BODY_TIMEOUT", cls.body_timeout_s),
            write_concurrency=_at_least_one(env, "WRITE_CONCURRENCY", cls.write_concurrency),
            read_priority_ms=_whole_number(env, "READ_PRIORITY_MS", cls.read_priority_ms),
            **_webhook_settings(env),
        )
        check_admin_token(config.app_env, config.admin_token)
        return replace(
            config,
            identity=IdentitySettings.from_env(env, config.app_env, INSTANCE_DIR),
            webhook_secret_keys=resolve_webhook_secret_keys(env, config.app_env),
        )


def _webhook_settings(env) -> dict:
    defaults = Config.__dataclass_fields__
    return {
        "webhook_allow_private": _flag(env, "WEBHOOK_ALLOW_PRIVATE"),
        "webhook_timeout_s": _positive_seconds(env, "WEBHOOK_TIMEOUT_S", defaults["webhook_timeout_s"].default),
        "webhook_retry_schedule": _schedule(env, "WEBHOOK_RETRY_SCHEDULE", defaults["webhook_retry_schedule"].default),
        "webhook_retention_s": _duration(env, "WEBHOOK_RETENTION", defaults["webhook_retention_s"].default),
        "webhook_concurrency": _at_least_one(env, "WEBHOOK_CONCURRENCY", defaults["webhook_concurrency"].default),
        "webhook_per_receiver": _at_least_one(env, "WEBHOOK_PER_RECEIVER", defaults["webhook_per_receiver"].default),
        "webhook_per_host": _at_least_one(env, "WEBHOOK_PER_HOST", defaults["webhook_per_host"].default),
        "webhook_poll_interval_s": _positive_seconds(
            env, "WEBHOOK_POLL_INTERVAL_S", defaults["webhook_poll_interval_s"].default
        ),
    }


def _flag(env, name: str) -> bool:
    value = (env.get(name) or "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value in ("true", "1", "yes")


def _positive_seconds(env, name: str, default: float) -> float:
    value = (env.get(name) or "").strip()
    try:
        seconds = float(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {value!r}") from None
    if not seconds > 0:
        raise ValueError(f"{name} must be more than 0 seconds")
    return seconds


def _schedule(env, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """Delays between tries, comma-separated durations: `5s,5m,30m,2h`."""
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        return tuple(parse_duration(part.strip()) for part in value.split(","))
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def _whole_number(env, name: str, default: int) -> int:
    """A non-negative integer setting; a typo fails at start-up with the variable's name."""
    value = (env.get(name) or "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return int(value)


def _at_least_one(env, name: str, default: int) -> int:
    value = _whole_number(env, name, default)
    if value < 1:
        raise ValueError(f"{name} must be at least 1")
    return value


def _rate_limit(env, name: str, default: str) -> str:
    """A flask-limiter limit such as `100 per minute` (or several, `;`-separated); empty disables."""
    value = env.get(name, default).strip()
    if value:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{name} is not a rate limit like '100 per minute': {value!r}") from None
    return value


def _duration(env, name: str, default_s: int) -> int:
    value = (env.get(name) or "").strip()
    try:
        return parse_duration(value) if value else default_s
    except ValueError as exc:
        raise ValueError(f"{name} is {exc}") from None  # which setting: the message is one line at start-up


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> int:
    """Seconds in `value`: a whole number with an optional unit, s, m, h or d (`24h`, `90m`, `3600`)."""
    number, unit = (value[:-1], value[-1]) if value[-1:] in DURATION_UNITS else (value, "s")
    if not number.strip().isdigit() or int(number) == 0:
        raise ValueError(f"not a positive duration like 24h, 90m or 3600s: {value!r}")
    return int(number) * DURATION_UNITS[unit]


def _optional_int(env, name: str, default: int | None) -> int | None:
    """`env[name]` as an int; `default` when unset; None when set but empty (the feature is off)."""
    value = env.get(name)
    if value is None:
        return default
    return _whole_number(env, name, 0) if value.strip() else None


def normalise_database_url(url: str) -> str:
    """Accept the common `postgres://` and `postgresql://` spellings and pin the psycopg2 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def resolve_webhook_secret_keys(env, app_env: str, instance_dir: Path = INSTANCE_DIR) -> tuple[str, ...]:
    """WEBHOOK_SECRET_KEY (comma-separated Fernet keys, the first encrypts), else in development a key
    generated under `instance_dir`; production refuses to start without the variable."""
    configured = tuple(key.strip() for key in (env.get("WEBHOOK_SECRET_KEY") or "").split(",") if key.strip())
    if configured:
        return configured
    if app_env == PRODUCTION:
        raise InsecureConfiguration(
            f"APP_ENV={PRODUCTION} requires WEBHOOK_SECRET_KEY (it encrypts webhook secrets at rest); make one "
            "with: python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    instance_dir.mkdir(parents=True, exist_ok=True)
    path = instance_dir / WEBHOOK_KEY_FILE
    return (stored_text(path) or store_once(path, Fernet.generate_key().decode()),)


def resolve_admin_token(instance_dir: Path) -> str:
    """Return ADMIN_TOKEN, else the token stored under `instance_dir`, creating it on first use.

    The file appears whole or not at all (written aside, then linked into place), so that several
    gunicorn workers starting at once agree on one token and none ever reads a half-written, empty
    one. An empty file (left by a crash of an older version, or a `touch`) is replaced.
    """
    if os.environ.get("ADMIN_TOKEN"):
        return os.environ["ADMIN_TOKEN"]
    path = instance_dir / ADMIN_TOKEN_FILE
    instance_dir.mkdir(parents=True, exist_ok=True)
    return stored_text(path) or store_once(path, secrets.token_urlsafe(32))
