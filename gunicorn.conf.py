"""Gunicorn settings for `make run` (`python -m app.operations.serve` starts `gunicorn -c gunicorn.conf.py wsgi:app`)."""

import multiprocessing
import os

# All interfaces, so that the service is reachable from outside a container as well as on loopback.
bind = f"0.0.0.0:{os.environ.get('PORT') or 8000}"

# One gevent worker per core. A request spends most of its time waiting: for PostgreSQL, for its
# turn at the event's row lock, for its batch (app/database/group_commit.py). A gevent worker switches to
# another request at each such wait, at the cost of a function call, where threads would fight over
# the GIL and the kernel would switch them; one process per core is enough to keep the cores busy,
# and leaves PostgreSQL its share. docs/performance.md has the measurements behind this choice.
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count())
# Connections one worker holds open; the requests they carry are admitted by app/web/admission.py.
worker_connections = 1000

# A worker silent for this long is killed and replaced; the app's statement timeout is shorter.
timeout = 30
# On SIGTERM, in-flight requests get this long to finish before workers are killed.
graceful_timeout = 30

# The app logs each request itself as one JSON line (with its request id); gunicorn's own access
# log would duplicate it in another format.
accesslog = None
# Gunicorn's own messages (worker starts, crashes, timeouts) go to stderr.
errorlog = "-"

# Gunicorn 25.1+ otherwise opens a control socket at one fixed path per user ($HOME/.gunicorn), which
# a second instance on the machine (another checkout, a test run) would fight over; we do not use it.
control_socket_disable = True

# No preload_app: each worker imports the app and builds its own database engine after the fork,
# so no connection pool is ever shared between processes.
preload_app = False


def post_fork(server, worker):
    """Make a SIGTERM, SIGINT or SIGQUIT that arrives while the worker boots stop it once booted.

    The gevent worker patches the standard library before it installs its own signal handlers, and
    until then the master's handlers, inherited through fork, would swallow the signal: the worker
    would serve on until the master's graceful timeout ran out and it was killed.
    """
    import signal

    def stop_once_booted(_signum, _frame):
        worker.alive = False

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, stop_once_booted)


def post_worker_init(worker):
    """Let psycopg2 wait for PostgreSQL in a way gevent turns into a switch to other requests.

    Without it, a worker would stand still, all its requests with it, during every query. Not in
    post_fork: that runs before the worker installs its signal handlers, and a SIGTERM arriving
    while the import below ran was lost, leaving the worker up until the graceful timeout.
    """
    import psycopg2.extensions

    from app.database.cooperative_wait import wait_cooperatively

    psycopg2.extensions.set_wait_callback(wait_cooperatively)


def child_exit(server, worker):
    """A worker is gone: drop its live gauges from the metrics that /metrics adds up (app/web/metrics.py)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
