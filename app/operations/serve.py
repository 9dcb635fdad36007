"""Run the service: `python -m app.operations.serve [serve|migrate|flask ...]` (`make run`, `make migrate`, `make check`).

Sets up everything a fresh checkout lacks: settings from `.env`, the `instance/` folder, an embedded
PostgreSQL when DATABASE_URL is unset, the admin token, and the schema (alembic upgrade head). Then
`serve` runs gunicorn and the webhook dispatcher as child processes and, once gunicorn exits, stops
the embedded PostgreSQL; `flask` runs a Flask CLI command (`flask check`, ...) against the same database.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import sqlalchemy.exc
from alembic import command
from alembic.config import Config as AlembicConfig
from dotenv import load_dotenv
from sqlalchemy.engine import make_url

from app.config import (
    ADMIN_TOKEN_FILE,
    INSTANCE_DIR,
    PROJECT_ROOT,
    Config,
    resolve_admin_token,
    resolve_webhook_secret_keys,
)
from app.config.production import PRODUCTION, InsecureConfiguration
from app.observability.metrics import MULTIPROC_DIR_VARIABLE
from app.operations.embedded_pg import EmbeddedPostgres
from app.workers.lifeline import LIFELINE_FD_VARIABLE

ROOT = PROJECT_ROOT
DATABASE_NAME = "booking"
# Held by the `serve` that uses the embedded PostgreSQL of this checkout, and by its gunicorn.
SERVE_LOCK_FILE = "serve.lock"
# The pipes to gunicorn's master (gunicorn.conf.py's hooks): it writes to the first once its port is
# bound, and stops when the second reaches end-of-file, that is when we are gone, however we died.
READY_FD_VARIABLE = "BOOKING_LAUNCHER_READY_FD"
# Longer than a send may take (WEBHOOK_TIMEOUT_S, default 10 s, for the whole send).
DISPATCHER_STOP_TIMEOUT_S = 30


class StartupError(Exception):
    """A problem the user can fix, reported as one line instead of a traceback."""


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parse_args(argv)
    # .env fills in only what the environment leaves unset: an explicit variable always wins.
    load_dotenv(ROOT / ".env", override=False)
    INSTANCE_DIR.mkdir(exist_ok=True)
    # SIGTERM or SIGHUP (the terminal closed) during set-up must unwind like Ctrl-C, so that
    # `finally` stops the embedded server.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_keyboard_interrupt)
    embedded = None if os.environ.get("DATABASE_URL") else EmbeddedPostgres(INSTANCE_DIR / "pgdata")
    lock = None
    try:
        if embedded is not None and args.command == "serve":
            lock = _claim_checkout()
        return _run(args, embedded, lock)
    except StartupError as exc:
        _say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if embedded is not None and _ours_to_stop(args.command, embedded, lock):
            embedded.stop()
            _say("Embedded PostgreSQL stopped")
        if lock is not None:
            os.close(lock)  # only now: the next `make run` must not adopt a server while it stops


def _claim_checkout() -> int:
    """Lock this checkout's embedded PostgreSQL for one `serve`; the lock's file descriptor.

    A second `make run` would adopt the first one's database and stop it on exit, under the first's
    feet. The lock dies with the processes that hold it, whatever kills them.
    """
    fd = os.open(INSTANCE_DIR / SERVE_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 100).decode(errors="replace").strip() or "starting"
        os.close(fd)
        raise StartupError(
            f"another `make run` is serving from this checkout ({holder}); stop it first, or give this one "
            "a database of its own with DATABASE_URL"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"port {_port()}, pid {os.getpid()}".encode())
    return fd


def _ours_to_stop(command: str, embedded: EmbeddedPostgres, lock: int | None) -> bool:
    """`serve` stops the embedded server it locked, even one it adopted (left by a killed run), never one
    that another `serve` holds; the other commands stop only one they started, and not while a `serve`
    uses it."""
    if command == "serve":
        return lock is not None
    return not embedded.adopted and not _checkout_locked()


def _checkout_locked() -> bool:
    try:
        fd = os.open(INSTANCE_DIR / SERVE_LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock just taken, if any


def _run(args: argparse.Namespace, embedded: EmbeddedPostgres | None, lock: int | None) -> int:
    """Prepare database, token and schema; then serve, run a flask command, or stop there (migrate)."""
    if embedded is not None:
        os.environ["DATABASE_URL"] = _start_embedded(embedded)
    os.environ["ADMIN_TOKEN"] = _admin_token(announce=args.command == "serve")
    try:
        if os.environ.get("APP_ENV", "").strip().lower() != PRODUCTION:  # where Config.from_env refuses it unset
            # One key for the workers and the dispatcher: WEBHOOK_SECRET_KEY, else the one under instance/.
            os.environ["WEBHOOK_SECRET_KEY"] = ",".join(resolve_webhook_secret_keys(os.environ, "", INSTANCE_DIR))
        Config.from_env()  # every setting checked once, here, rather than failing in each worker
    except (InsecureConfiguration, ValueError) as exc:
        raise StartupError(str(exc)) from exc
    _migrate(os.environ["DATABASE_URL"])
    if args.command == "flask":
        return _flask(args.flask_args)
    if args.command == "migrate":
        return 0
    return _serve(lock)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.operations.serve", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate", "flask"])
    parser.add_argument("flask_args", nargs=argparse.REMAINDER, help="with `flask`: the command and its options")
    return parser.parse_args(argv)


def _start_embedded(embedded: EmbeddedPostgres) -> str:
    """Start (or adopt) the embedded server and return the URL of our database on it."""
    try:
        embedded.start()
        url = embedded.ensure_database(DATABASE_NAME)
    except Exception as exc:  # pgserver raises bare subprocess/OS errors; the log says why
        raise StartupError(
            f"could not start the embedded PostgreSQL in {_relative(embedded.data_dir)} ({exc}); "
            f"see {_relative(embedded.data_dir / 'log')}, or set DATABASE_URL to use another server"
        ) from exc
    how = "already running, adopted" if embedded.adopted else "started"
    _say(f"Embedded PostgreSQL {how}: data in {_relative(embedded.data_dir)} (set DATABASE_URL to use another)")
    return url


def _admin_token(announce: bool) -> str:
    """Resolve the admin token; if `announce`, say where it comes from, echoing it only if we generated it.

    Only the server's start announces it: the maintenance commands' output (migrate, check, purge-keys)
    ends up in cron mail and CI logs, where a token must never be.
    """
    from_env = bool(os.environ.get("ADMIN_TOKEN"))
    token = resolve_admin_token(INSTANCE_DIR)
    if not announce:
        return token
    if from_env:
        _say("Admin token: from the ADMIN_TOKEN variable")
    else:
        stored = _relative(INSTANCE_DIR / ADMIN_TOKEN_FILE)
        _say(f"Admin token: {token} (from {stored}; set ADMIN_TOKEN to override)")
    return token


def _migrate(database_url: str) -> None:
    """Bring the schema up to date (alembic upgrade head)."""
    try:
        command.upgrade(AlembicConfig(str(ROOT / "alembic.ini")), "head")
    except sqlalchemy.exc.ArgumentError as exc:
        raise StartupError(f"DATABASE_URL is not a valid database URL: {exc}") from exc
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
        # The driver's first line says what went wrong (refused, unknown host, bad password...).
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StartupError(f"cannot reach the database at {_safe_url(database_url)}: {reason}") from exc


def _flask(flask_args: list[str]) -> int:
    """Run `flask --app wsgi <flask_args>` against the database prepared above; return its exit code."""
    return subprocess.call([sys.executable, "-m", "flask", "--app", "wsgi", *flask_args], cwd=ROOT)


def _serve(lock: int | None) -> int:
    """Run gunicorn in the foreground, stopping it gracefully on Ctrl-C, SIGTERM or SIGHUP; its exit code.

    gunicorn treats SIGINT as a quick shutdown that cuts requests short and SIGTERM as a graceful one
    that lets them finish, so every stop is passed on as SIGTERM; and gunicorn runs in a session of
    its own, so that the terminal's Ctrl-C reaches only us and not it directly. Should we die without
    passing it on (SIGKILL), gunicorn and the webhook dispatcher stop by themselves: see
    LIFELINE_FD_VARIABLE. The checkout's `lock`, if any, goes to both too, so that it is held until the
    last of their processes is gone.
    """
    gunicorn: subprocess.Popen[bytes] | None = None
    dispatcher: subprocess.Popen[bytes] | None = None
    early: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        # From here on a signal must never unwind us while gunicorn runs: it would be orphaned.
        if gunicorn is None:
            early.append(signal.SIGTERM)  # arrived while gunicorn was being spawned; sent just below
        else:
            gunicorn.send_signal(signal.SIGTERM)  # gunicorn drains its workers; we wait for it below
        if dispatcher is not None:
            dispatcher.send_signal(signal.SIGTERM)  # it finishes its sends in flight

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    _prepare_metrics_dir()
    ready, ready_for_gunicorn = os.pipe()
    lifeline_for_gunicorn, lifeline = os.pipe()  # ours stays open, uninherited, while gunicorn runs
    os.environ[READY_FD_VARIABLE] = str(ready_for_gunicorn)
    os.environ[LIFELINE_FD_VARIABLE] = str(lifeline_for_gunicorn)
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        start_new_session=True,
        pass_fds=[ready_for_gunicorn, lifeline_for_gunicorn, *([lock] if lock is not None else [])],
    )
    # The background process follows the same lifeline (app/workers/__main__.py), and holds the lock too.
    workers = _start_workers(lifeline_for_gunicorn, lock)
    for fd in (ready_for_gunicorn, lifeline_for_gunicorn):
        os.close(fd)
    for signum in early:
        gunicorn.send_signal(signum)
        workers.send_signal(signum)
    try:
        return _report_serving(gunicorn, ready)
    finally:
        _stop_workers(workers)
        os.close(lifeline)


def _report_serving(gunicorn: subprocess.Popen[bytes], ready: int) -> int:
    """Say "Serving on" once gunicorn has bound its port, or that it never did; wait for its exit code."""
    with os.fdopen(ready, "rb") as pipe:
        bound = bool(pipe.read())  # b"" if gunicorn exits first: it could not bind, or was stopped
    if bound:
        _say(f"Serving on http://127.0.0.1:{_port()} (Ctrl-C to stop)")
    code = gunicorn.wait()
    if not bound and code > 0:  # gunicorn's own failure (a stop we passed on ends in 0 or a signal)
        _say(f"error: gunicorn exited before serving on port {_port()}; its messages above say why")
    return code if code >= 0 else 128 - code  # killed by signal N: report it the shell's way


def _start_workers(lifeline: int, lock: int | None) -> subprocess.Popen[bytes]:
    """The background process (app/workers/: the webhook dispatcher, the offer sweeper) beside gunicorn, in
    a session of its own too; it stops once the `lifeline` pipe reaches end-of-file, as gunicorn does."""
    environment = {key: value for key, value in os.environ.items() if key != READY_FD_VARIABLE}  # gunicorn's
    process = subprocess.Popen(
        [sys.executable, "-m", "app.workers"],
        cwd=ROOT,
        start_new_session=True,
        env={**environment, LIFELINE_FD_VARIABLE: str(lifeline)},
        pass_fds=[lifeline, *([lock] if lock is not None else [])],
    )
    _say("Background workers started (python -m app.workers: webhook dispatch, offer sweep)")
    return process


def _stop_workers(workers: subprocess.Popen[bytes]) -> None:
    """Stop it (if gunicorn exited on its own it has not been told yet) and wait for its sends in flight."""
    if workers.poll() is None:
        workers.send_signal(signal.SIGTERM)
    try:
        workers.wait(timeout=DISPATCHER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        workers.kill()  # its claims expire and another dispatcher sends those messages again
        workers.wait()


def _prepare_metrics_dir() -> None:
    """Give gunicorn's workers a folder for their metrics (app/web/metrics.py), emptied of a previous run's
    values, which /metrics would otherwise add to this run's. One per port: two instances started
    from one checkout must neither add up nor wipe each other's values."""
    path = Path(os.environ.get(MULTIPROC_DIR_VARIABLE) or INSTANCE_DIR / "prometheus" / _port())
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # only prometheus-client's files: the folder may be the operator's
        stale.unlink()
    os.environ[MULTIPROC_DIR_VARIABLE] = str(path)


def _port() -> str:
    return os.environ.get("PORT") or "8000"  # gunicorn.conf.py's default


def _raise_keyboard_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _safe_url(url: str) -> str:
    """`url` with any password masked, fit for printing."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<unparsable URL>"


def _relative(path: Path) -> str:
    """`path` relative to the project root, where it lies inside it (shorter to read)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _say(message: str) -> None:
    # stderr, beside gunicorn's own messages: stdout carries only the app's JSON log lines.
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
