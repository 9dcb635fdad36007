import base64
import stat

import pytest

from app.config import Config, normalise_database_url, parse_duration, resolve_admin_token, resolve_webhook_secret_keys
from app.config.production import InsecureConfiguration
from tests.helpers.api import WEBHOOK_SECRET_KEY as FERNET_KEY


@pytest.mark.parametrize("url", ["postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg2://u@h/db"])
def test_database_urls_are_pinned_to_psycopg2(url):
    assert normalise_database_url(url) == "postgresql+psycopg2://u@h/db"


def test_config_from_env_applies_the_contract_defaults():
    config = Config.from_env({"DATABASE_URL": "postgresql://u@h/db", "ADMIN_TOKEN": "t" * 32})
    assert (config.rate_limit_storage_uri, config.log_level, config.max_body_bytes) == ("memory://", "INFO", 65536)
    assert config.rate_limit
    assert config.idempotency_retention_s == 24 * 3600


def test_config_from_env_reads_every_variable():
    config = Config.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/db",
            "ADMIN_TOKEN": "tok",
            "RATE_LIMIT": "",
            "RATE_LIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
            "LOG_LEVEL": "debug",
            "MAX_BODY_BYTES": "1024",
            "RATE_LIMIT_WRITE": "5 per second",
            "RATE_LIMIT_KEY_PREFIX": "staging",
            "TRUSTED_PROXIES": "2",
            "IDEMPOTENCY_RETENTION": "48h",
            "WRITE_CONCURRENCY": "3",
            "READ_PRIORITY_MS": "0",
            "BODY_TIMEOUT": "30s",
            "METRICS_TOKEN": "scrape-me",
        }
    )
    assert (config.idempotency_retention_s, config.body_timeout_s) == (48 * 3600, 30)
    assert config.metrics_token == "scrape-me"
    assert (config.write_concurrency, config.read_priority_ms) == (3, 0)
    assert (config.admin_token, config.rate_limit, config.log_level, config.max_body_bytes) == (
        "tok",
        "",
        "DEBUG",
        1024,
    )
    assert config.rate_limit_storage_uri == "redis://127.0.0.1:6379/0"
    assert (config.rate_limit_write, config.rate_limit_key_prefix, config.trusted_proxies) == (
        "5 per second",
        "staging",
        2,
    )


def test_rate_limits_default_to_a_tighter_budget_for_writes_and_no_trusted_proxy():
    config = Config.from_env({"DATABASE_URL": "postgresql://u@h/db", "ADMIN_TOKEN": "t" * 32})
    assert (config.rate_limit, config.rate_limit_write) == ("300 per minute", "60 per minute")
    assert (config.rate_limit_key_prefix, config.trusted_proxies) == ("booking", 0)


def test_empty_write_limit_is_kept_empty_so_it_disables_the_write_budget():
    config = Config.from_env({"DATABASE_URL": "postgresql://u@h/db", "ADMIN_TOKEN": "t" * 32, "RATE_LIMIT_WRITE": ""})
    assert config.rate_limit_write == ""


def test_config_without_database_url_says_how_to_get_one():
    with pytest.raises(RuntimeError, match="DATABASE_URL"):
        Config.from_env({})


def test_admin_token_is_generated_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    token = resolve_admin_token(tmp_path)
    assert len(token) >= 32 and resolve_admin_token(tmp_path) == token
    assert stat.S_IMODE((tmp_path / "admin_token").stat().st_mode) == 0o600


def test_admin_token_from_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMIN_TOKEN", "from-env")
    assert resolve_admin_token(tmp_path) == "from-env"
    assert not (tmp_path / "admin_token").exists()


def test_config_from_the_process_environment_is_completed_by_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://from-dotenv@h/db\nLOG_LEVEL=warning\n")
    monkeypatch.setattr("app.config.PROJECT_ROOT", tmp_path)
    monkeypatch.setenv("DATABASE_URL", "")  # recorded, so that what load_dotenv sets is undone too
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    monkeypatch.setenv("ADMIN_TOKEN", "t")
    config = Config.from_env()
    assert config.database_url == "postgresql+psycopg2://from-dotenv@h/db"
    assert config.log_level == "ERROR"


def test_cors_origins_are_a_comma_separated_allow_list():
    config = Config.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/db",
            "ADMIN_TOKEN": "t",
            "CORS_ORIGINS": " https://a.example, https://b.example,",
        }
    )
    assert config.cors_origins == ("https://a.example", "https://b.example")


def test_cors_is_off_and_mode_is_development_by_default():
    config = Config.from_env({"DATABASE_URL": "postgresql://u@h/db", "ADMIN_TOKEN": "t"})
    assert (config.cors_origins, config.app_env) == ((), "development")


@pytest.mark.parametrize("token", ["short", "x" * 31, "change-me", "CHANGE-ME-" + "x" * 40])
def test_production_mode_refuses_a_short_or_placeholder_admin_token(token):
    with pytest.raises(InsecureConfiguration, match="32 characters"):
        Config.from_env({"DATABASE_URL": "postgresql://u@h/db", "ADMIN_TOKEN": token, "APP_ENV": "Production"})


def test_production_mode_accepts_a_long_random_admin_token():
    config = Config.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/db",
            "ADMIN_TOKEN": "k" * 32,
            "APP_ENV": "production",
            "AUTH_MODE": "open",
            "WEBHOOK_SECRET_KEY": FERNET_KEY,
        }
    )
    assert config.app_env == "production"


def test_production_mode_refuses_to_start_without_a_webhook_secret_key():
    with pytest.raises(InsecureConfiguration, match="WEBHOOK_SECRET_KEY"):
        Config.from_env(
            {
                "DATABASE_URL": "postgresql://u@h/db",
                "ADMIN_TOKEN": "k" * 32,
                "APP_ENV": "production",
                "AUTH_MODE": "open",
            }
        )


def test_in_development_a_webhook_secret_key_is_made_once_under_instance(tmp_path):
    key = resolve_webhook_secret_keys({}, "development", tmp_path)

    assert len(base64.urlsafe_b64decode(key[0])) == 32
    assert resolve_webhook_secret_keys({}, "development", tmp_path) == key


def test_webhook_secret_keys_are_comma_separated_for_rotation(tmp_path):
    assert resolve_webhook_secret_keys({"WEBHOOK_SECRET_KEY": "new, old"}, "production", tmp_path) == ("new", "old")


def test_config_from_env_reads_the_webhook_settings():
    config = Config.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/db",
            "ADMIN_TOKEN": "tok",
            "WEBHOOK_SECRET_KEY": FERNET_KEY,
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_TIMEOUT_S": "2.5",
            "WEBHOOK_RETRY_SCHEDULE": "1s, 2m,3h",
            "WEBHOOK_RETENTION": "1d",
            "WEBHOOK_CONCURRENCY": "8",
            "WEBHOOK_PER_RECEIVER": "2",
            "WEBHOOK_PER_HOST": "3",
            "WEBHOOK_POLL_INTERVAL_S": "0.5",
        }
    )
    assert (config.webhook_allow_private, config.webhook_timeout_s, config.webhook_retry_schedule) == (
        True,
        2.5,
        (1, 120, 3 * 3600),
    )
    assert (config.webhook_retention_s, config.webhook_concurrency, config.webhook_per_receiver) == (86400, 8, 2)
    assert config.webhook_per_host == 3
    assert (config.webhook_poll_interval_s, config.webhook_secret_keys) == (0.5, (FERNET_KEY,))


def test_the_webhook_defaults_are_the_contracts():
    config = Config.from_env(
        {"DATABASE_URL": "postgresql://u@h/db", "ADMIN_TOKEN": "tok", "WEBHOOK_SECRET_KEY": FERNET_KEY}
    )
    assert (config.webhook_allow_private, config.webhook_timeout_s) == (False, 10.0)
    assert config.webhook_retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)


@pytest.mark.parametrize(
    "name, value",
    [
        ("WEBHOOK_ALLOW_PRIVATE", "maybe"),
        ("WEBHOOK_TIMEOUT_S", "ten"),
        ("WEBHOOK_TIMEOUT_S", "0"),
        ("WEBHOOK_RETRY_SCHEDULE", "5s,soon"),
        ("WEBHOOK_PER_HOST", "0"),
    ],
)
def test_a_malformed_webhook_setting_is_refused_by_name(name, value):
    with pytest.raises(ValueError, match=name):
        Config.from_env(
            {"DATABASE_URL": "postgresql://u@h/db", "ADMIN_TOKEN": "tok", "WEBHOOK_SECRET_KEY": FERNET_KEY, name: value}
        )


def test_outside_production_a_short_admin_token_is_allowed():
    assert Config.from_env({"DATABASE_URL": "postgresql://u@h/db", "ADMIN_TOKEN": "dev", "APP_ENV": "staging"})


@pytest.mark.parametrize("value, seconds", [("24h", 86400), ("90m", 5400), ("2d", 172800), ("45s", 45), ("3600", 3600)])
def test_durations_take_an_optional_unit(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "h", "0", "-1h", "1.5h", "1w", "soon"])
def test_a_duration_that_is_not_a_positive_whole_number_of_units_is_refused(value):
    with pytest.raises(ValueError, match="positive duration"):
        parse_duration(value)


def test_an_empty_stored_admin_token_is_replaced_by_a_new_one(tmp_path, monkeypatch):
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    (tmp_path / "admin_token").write_text("")
    token = resolve_admin_token(tmp_path)
    assert len(token) >= 32 and (tmp_path / "admin_token").read_text() == token
    assert [p.name for p in tmp_path.iterdir()] == ["admin_token"]  # no draft left behind


@pytest.mark.parametrize(
    "name, value",
    [
        ("RATE_LIMIT", "lots please"),
        ("RATE_LIMIT_WRITE", "10 per fortnight"),
        ("MAX_BODY_BYTES", "64k"),
        ("DB_POOL_SIZE", "eight"),
        ("TRUSTED_PROXIES", "1.5"),
        ("DB_LOCK_TIMEOUT_MS", "5s"),
        ("WRITE_CONCURRENCY", "0"),
        ("READ_PRIORITY_MS", "-1"),
    ],
)
def test_a_malformed_setting_is_refused_by_name(name, value):
    with pytest.raises(ValueError, match=name):
        Config.from_env({"DATABASE_URL": "postgresql://u@h/db", "ADMIN_TOKEN": "t", name: value})


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DB_STATEMENT_TIMEOUT_MS", None, 10_000),
        ("DB_STATEMENT_TIMEOUT_MS", "2500", 2500),
        ("DB_STATEMENT_TIMEOUT_MS", "", None),
        ("DB_LOCK_TIMEOUT_MS", None, 5_000),
        ("DB_LOCK_TIMEOUT_MS", "700", 700),
        ("DB_LOCK_TIMEOUT_MS", "", None),
    ],
)
def test_timeouts_have_defaults_and_empty_leaves_them_to_the_server(variable, value, expected):
    env = {"DATABASE_URL": "postgresql://u@h/db", "ADMIN_TOKEN": "t"}
    if value is not None:
        env[variable] = value
    assert getattr(Config.from_env(env), variable.lower()) == expected
