"""`python -m app.operations.serve`: set-up steps, error messages and signal handling, with gunicorn faked."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
from types import SimpleNamespace

import pytest

from app.operations import serve
from app.operations.embedded_pg import EmbeddedPostgres


class FakeGunicorn:
    """Stands in for the gunicorn child: records signals, exits with `code` when waited for."""

    def __init__(self, code: int = 0, signal_during_wait: int | None = None, signal_during_spawn=None) -> None:
        self.code, self.signals, self.argv = code, [], None
        self.signal_during_wait, self.signal_during_spawn = signal_during_wait, signal_during_spawn

    def __call__(self, argv, cwd, start_new_session, pass_fds, env=None):
        if argv[-1] == "app.workers":
            self.dispatcher = FakeDispatcher(start_new_session, pass_fds, env)
            return self.dispatcher
        self.argv, self.own_session = argv, start_new_session
        if self.signal_during_spawn is not None:
            signal.raise_signal(self.signal_during_spawn)  # before serve.py holds the child's handle
        os.write(int(os.environ[serve.READY_FD_VARIABLE]), b"ready")  # as gunicorn.conf.py's when_ready does
        return self

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)

    def wait(self) -> int:
        if self.signal_during_wait is not None:
            signal.raise_signal(self.signal_during_wait)  # as if the user pressed Ctrl-C now
        return self.code


class FakeDispatcher:
    """Stands in for the webhook dispatcher that serve.py starts beside gunicorn: records signals."""

    def __init__(self, own_session: bool, pass_fds: list[int], env: dict) -> None:
        self.own_session, self.pass_fds, self.env, self.signals = own_session, pass_fds, env, []

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)

    def poll(self) -> int | None:
        return 0 if self.signals else None

    def wait(self, timeout: float) -> int:
        return 0


@pytest.fixture(autouse=True)
def isolated(monkeypatch, scratch):
    """No .env, a scratch instance/ folder, and the process's signal handlers put back afterwards."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    monkeypatch.setattr(serve, "load_dotenv", lambda *a, **k: None)
    monkeypatch.setattr(serve, "INSTANCE_DIR", scratch / "instance")
    for name in (
        "DATABASE_URL",
        "ADMIN_TOKEN",
        "PORT",
        "PROMETHEUS_MULTIPROC_DIR",
        "APP_ENV",
        "WEBHOOK_SECRET_KEY",
        serve.READY_FD_VARIABLE,
        serve.LIFELINE_FD_VARIABLE,
    ):
        monkeypatch.setenv(name, "")  # recorded, so that what serve.py sets is undone afterwards
        monkeypatch.delenv(name)
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def test_serve_runs_gunicorn_and_returns_its_exit_code(monkeypatch, database_url, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ADMIN_TOKEN", "from-env")
    gunicorn = FakeGunicorn(code=3)
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=gunicorn))
    assert serve.main([]) == 3
    assert gunicorn.argv[-2:] == ["gunicorn.conf.py", "wsgi:app"] and gunicorn.signals == []
    err = capsys.readouterr().err
    assert "http://127.0.0.1:8000" in err and "from the ADMIN_TOKEN variable" in err and "from-env" not in err


def test_serve_gives_gunicorn_an_emptied_metrics_folder_of_its_port(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PORT", "8123")
    stale = serve.INSTANCE_DIR / "prometheus" / "8123" / "counter_12345.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old run")
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=FakeGunicorn()))
    assert serve.main([]) == 0
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(stale.parent) and not stale.exists()


def test_an_operator_metrics_folder_keeps_its_other_files(monkeypatch, database_url, scratch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(scratch / "metrics"))
    (scratch / "metrics").mkdir()
    (scratch / "metrics" / "notes.txt").write_text("mine")
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=FakeGunicorn()))
    assert serve.main([]) == 0
    assert (scratch / "metrics" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_gunicorn_gracefully_with_sigterm(monkeypatch, database_url, signum):
    monkeypatch.setenv("DATABASE_URL", database_url)
    gunicorn = FakeGunicorn(code=-signal.SIGTERM, signal_during_wait=signum)
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=gunicorn))
    assert serve.main(["serve"]) == 128 + signal.SIGTERM
    assert gunicorn.signals == [signal.SIGTERM] and gunicorn.own_session
    assert gunicorn.dispatcher.signals == [signal.SIGTERM] and gunicorn.dispatcher.own_session


def test_the_dispatcher_is_stopped_when_gunicorn_exits_on_its_own(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    gunicorn = FakeGunicorn(code=1)
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=gunicorn))
    assert serve.main(["serve"]) == 1
    assert gunicorn.dispatcher.signals == [signal.SIGTERM]


def test_the_dispatcher_follows_gunicorns_lifeline_and_not_its_ready_pipe(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    gunicorn = FakeGunicorn()
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=gunicorn))
    assert serve.main(["serve"]) == 0
    dispatcher = gunicorn.dispatcher
    assert serve.READY_FD_VARIABLE not in dispatcher.env
    assert int(dispatcher.env[serve.LIFELINE_FD_VARIABLE]) in dispatcher.pass_fds


def test_a_signal_during_the_spawn_reaches_gunicorn_too(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    gunicorn = FakeGunicorn(signal_during_spawn=signal.SIGINT)
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=gunicorn))
    assert serve.main(["serve"]) == 0
    assert gunicorn.signals == [signal.SIGTERM]


def test_serve_prints_the_admin_token_it_generated(monkeypatch, database_url, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=FakeGunicorn()))
    assert serve.main(["serve"]) == 0
    token = (serve.INSTANCE_DIR / "admin_token").read_text().strip()
    assert f"Admin token: {token} (from" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [["migrate"], ["flask", "check"], ["flask", "purge-idempotency-keys"]], ids=["migrate", "check", "purge"]
)
def test_maintenance_commands_never_print_the_admin_token(monkeypatch, database_url, capfd, argv):
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert serve.main(argv) == 0
    token = (serve.INSTANCE_DIR / "admin_token").read_text().strip()  # generated all the same, for `make run`
    output = capfd.readouterr()
    assert token not in output.out + output.err and "Admin token" not in output.err


def test_embedded_postgres_is_started_and_stopped(monkeypatch, scratch, capsys):
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=FakeGunicorn()))
    assert serve.main(["serve"]) == 0
    err = capsys.readouterr().err
    assert "Embedded PostgreSQL started" in err and "Embedded PostgreSQL stopped" in err
    assert not (scratch / "instance" / "pgdata" / "postmaster.pid").exists()


def test_migrate_leaves_an_adopted_embedded_postgres_running(scratch, capsys):
    running = EmbeddedPostgres(scratch / "instance" / "pgdata")
    running.start()
    try:
        assert serve.main(["migrate"]) == 0
        assert "already running, adopted" in capsys.readouterr().err
        assert running.url()  # still running
    finally:
        running.stop()


def test_embedded_postgres_failing_to_start_is_one_clear_line(monkeypatch, capsys):
    def fail(self):
        raise subprocess.CalledProcessError(1, "pg_ctl")

    monkeypatch.setattr(EmbeddedPostgres, "start", fail)
    assert serve.main(["migrate"]) == 1
    assert "error: could not start the embedded PostgreSQL" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://user:secret@127.0.0.1:1/booking", "cannot reach the database at postgresql://user:***@"),
        ("not a url", "DATABASE_URL is not a valid database URL"),
    ],
)
def test_bad_database_url_is_one_clear_line(monkeypatch, capsys, url, message):
    monkeypatch.setenv("DATABASE_URL", url)
    assert serve.main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "secret" not in err


def test_sigterm_during_set_up_unwinds_like_ctrl_c(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(serve, "_migrate", lambda url: signal.raise_signal(signal.SIGTERM))
    assert serve.main(["migrate"]) == 130


def test_production_mode_with_a_short_admin_token_refuses_to_start(monkeypatch, database_url, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("ADMIN_TOKEN", "change-me")
    gunicorn = FakeGunicorn()
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=gunicorn))
    assert serve.main([]) == 1
    assert "error: APP_ENV=production refuses an ADMIN_TOKEN" in capsys.readouterr().err and gunicorn.argv is None


def test_an_unparsable_database_url_is_printed_masked():
    assert serve._safe_url("::") == "<unparsable URL>"


def test_paths_are_printed_relative_to_the_project_where_they_lie_inside_it():
    assert serve._relative(serve.ROOT / "instance") == "instance"
    assert serve._relative(serve.ROOT.parent) == str(serve.ROOT.parent)


def test_flask_runs_a_flask_command_against_the_prepared_database(monkeypatch, database_url, capfd):
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert serve.main(["flask", "check"]) == 0
    assert "check passed" in capfd.readouterr().out


@pytest.mark.parametrize(
    "name, value",
    [("RATE_LIMIT", "lots please"), ("MAX_BODY_BYTES", "64k"), ("TRUSTED_PROXIES", "-1"), ("BODY_TIMEOUT", "0s")],
)
def test_a_malformed_setting_refuses_to_start_with_one_line_naming_it(monkeypatch, database_url, capsys, name, value):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv(name, value)
    gunicorn = FakeGunicorn()
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=gunicorn))
    assert serve.main(["serve"]) == 1
    assert f"error: {name}" in capsys.readouterr().err and gunicorn.argv is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "needs AUTH_MODE set explicitly"),
        (
            {"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": "s" * 32, "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a"},
            "refuses AUTH_JWT_SECRET",
        ),
    ],
)
def test_production_mode_refuses_to_start_without_a_real_identity_setting(
    monkeypatch, database_url, capsys, settings, message
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("ADMIN_TOKEN", "k" * 40)
    for name in ("AUTH_MODE", "AUTH_JWKS_URL", "AUTH_JWT_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    gunicorn = FakeGunicorn()
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=gunicorn))
    assert serve.main([]) == 1
    assert message in capsys.readouterr().err and gunicorn.argv is None


@pytest.fixture
def locked_checkout(scratch):
    """instance/serve.lock held as a running `make run` holds it (another open file: flock tells them apart)."""
    (scratch / "instance").mkdir()
    fd = os.open(scratch / "instance" / serve.SERVE_LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"port 8123, pid 4242")
    yield
    os.close(fd)


def test_serve_refuses_while_another_serve_holds_the_checkout_and_touches_no_database(
    monkeypatch, scratch, capsys, locked_checkout
):
    gunicorn = FakeGunicorn()
    monkeypatch.setattr(serve, "subprocess", SimpleNamespace(Popen=gunicorn))
    assert serve.main(["serve"]) == 1
    assert "error: another `make run` is serving from this checkout (port 8123, pid 4242)" in capsys.readouterr().err
    assert gunicorn.argv is None and not (scratch / "instance" / "pgdata").exists()


def test_a_command_leaves_the_database_it_started_running_while_a_serve_holds_the_checkout(
    scratch, capsys, locked_checkout
):
    database = EmbeddedPostgres(scratch / "instance" / "pgdata")
    try:
        assert serve.main(["migrate"]) == 0  # it started the server, which a `make run` then adopted
        assert "Embedded PostgreSQL started" in capsys.readouterr().err
        database.start()
        assert database.adopted
    finally:
        database.stop()
