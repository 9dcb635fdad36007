"""`make run`'s launcher (app/operations/serve.py) as a process: when it says it serves, and that its
server and its database go with it, however it is stopped."""

from __future__ import annotations

import signal
import socket

import pytest

from app.operations.embedded_pg import EmbeddedPostgres
from tests.helpers.live_server import Launcher, call, running
from tests.helpers.waiting import wait_until

ADMIN_TOKEN = "e2e-launcher-admin-token-0123456789"
SERVING = "Serving on"
START_DEADLINE_S = 60  # a first embedded PostgreSQL runs initdb, on a machine shared with others
EXIT_DEADLINE_S = 20


@pytest.fixture
def launch(scratch, database_url):
    """Start launchers on free ports, all with the instance folder `scratch`; all killed afterwards."""
    started: list[Launcher] = []

    def start(embedded: bool = False) -> Launcher:
        launcher = Launcher(scratch, None if embedded else database_url, ADMIN_TOKEN).start()
        started.append(launcher)
        return launcher

    yield start
    for launcher in started:
        launcher.kill()
    EmbeddedPostgres(scratch / "pgdata").stop()  # left running if a launcher was killed; else a no-op


def serving(launcher: Launcher) -> Launcher:
    wait_until(
        lambda: launcher.said(SERVING) or launcher.process.poll() is not None, "the launcher serves", START_DEADLINE_S
    )
    assert launcher.said(SERVING), launcher.messages()
    return launcher


def test_serving_on_is_said_only_once_the_port_accepts_connections(launch):
    launcher = serving(launch())
    with socket.create_connection(("127.0.0.1", launcher.port), timeout=1):
        pass  # refused, had it been said before gunicorn bound the port


def test_a_port_in_use_is_an_error_and_serving_on_is_never_said(launch):
    launcher = launch()
    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", launcher.port))
        squatter.listen()
        assert launcher.process.wait(timeout=EXIT_DEADLINE_S) == 1
    assert not launcher.said(SERVING), launcher.messages()
    assert launcher.said(f"error: gunicorn exited before serving on port {launcher.port}")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_gunicorn_its_workers_and_the_dispatcher_do_not_outlive_the_launcher(launch, signum):
    launcher = serving(launch())
    wait_until(lambda: len(launcher.server_processes()) == 4, "gunicorn's master has forked its two workers")
    server = launcher.known
    assert any("app.workers" in process.cmdline() for process in server)
    launcher.process.send_signal(signum)
    wait_until(
        lambda: not running(server), "gunicorn's master, its workers and the dispatcher are gone", EXIT_DEADLINE_S
    )
    assert launcher.process.wait(timeout=EXIT_DEADLINE_S) == (-signal.SIGKILL if signum == signal.SIGKILL else 0)


def test_a_second_launcher_in_one_checkout_refuses_and_leaves_the_first_serving(launch):
    first = serving(launch(embedded=True))
    second = launch(embedded=True)
    assert second.process.wait(timeout=START_DEADLINE_S) == 1, second.messages()
    assert second.said(f"another `make run` is serving from this checkout (port {first.port}, pid "), second.messages()
    assert not second.said("Embedded PostgreSQL stopped")
    assert call(first.base_url, "GET", "/readyz")[0] == 200  # its database is still up

    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=EXIT_DEADLINE_S) == 0
    assert first.said("Embedded PostgreSQL stopped")
