"""Gunicorn settings for `make run` (`python -m app.operations.serve` starts `gunicorn -c gunicorn.conf.py wsgi:app`)."""

import multiprocessing
import os
import resource
import signal
import threading


def _fd_hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


# All interfaces, so that the service is reachable from outside a container as well as on loopback.
bind = f"0.0.0.0:{os.environ.get('PORT') or 8000}"

# One gevent worker per core. A request spends most of its time waiting: for PostgreSQL, for its
# turn at the event's row lock, for its batch (app/database/group_commit.py). A gevent worker switches to
# another request at each such wait, at the cost of a function call, where threads would fight over
# the GIL and the kernel would switch them; one process per core is enough to keep the cores busy,
# and leaves PostgreSQL its share. docs/performance.md has the measurements behind this choice. The
# class is gunicorn's gevent worker, answering gunicorn's own refusals as problem+json and bounding how
# long a request body may take to arrive (BODY_TIMEOUT): gunicorn_worker.py, beside this file and outside
# the `app` package, so that loading it in the master imports nothing of the app before gevent patches.
worker_class = "gunicorn_worker.ProblemGeventWorker"
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count())
# Connections one worker holds open; the requests they carry are admitted by app/web/admission.py, so
# this bounds only sockets, about 11 KB each when idle. It is what a client needs to lock everyone
# else out by holding connections open: with 1000, 2 100 clients trickling their bodies made every
# other request time out (BODY_TIMEOUT then frees each slot after 10 s, but the tricklers just
# reconnect). 4000 a worker is 8000 on two cores, within the file descriptors on_starting makes room for.
FD_RESERVE = 100  # descriptors besides the connections: database connections, logs, the listener
worker_connections = min(4000, _fd_hard_limit() - FD_RESERVE)

# What gunicorn's parser accepts; beyond it the worker answers 414 uri_too_long or 431
# headers_too_large. The longest line a client needs is a booking-status of a 128-character user id,
# percent-encoded UTF-8 (up to 12 bytes a character): about 1.6 KB with the event id. 4094 (gunicorn's
# default) leaves room for that and refuses nothing a client of this API sends.
limit_request_line = 4094
# A browser sends about 15 header fields and each proxy adds one or two; 50 leaves room for both, and
# holds the headers a worker must keep of one request to 50 x 8 KB.
limit_request_fields = 50
# A field may be a bearer JWT with its claims (AUTH_MODE=jwt), a few KB; 8190 is gunicorn's default.
limit_request_field_size = 8190

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


def on_starting(server):
    """Raise the soft limit on open files (often 1024) to what worker_connections needs; workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = worker_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def when_ready(server):
    """Tell `make run` (app/operations/serve.py) that the port is bound: only then does it say "Serving on".

    Then follow it: once its end of the lifeline pipe closes, because it exited however it died (even
    SIGKILL, which it cannot pass on), stop gracefully as on its SIGTERM. Without it, a killed `make run`
    left gunicorn serving on, holding the port, against a database nobody would stop.
    """
    # The variables' names are serve.py's; not imported from it, since that would load the app here,
    # in the master, before a worker patches the standard library for gevent.
    ready = os.environ.pop("BOOKING_LAUNCHER_READY_FD", None)
    if ready is not None:
        os.write(int(ready), b"ready")
        os.close(int(ready))  # before the workers fork: they must not hold it open
    lifeline = os.environ.pop("BOOKING_LAUNCHER_LIFELINE_FD", None)
    if lifeline is not None:
        watcher = threading.Thread(target=_stop_after, args=(server, int(lifeline)), name="lifeline", daemon=True)
        watcher.start()


def _stop_after(server, lifeline: int) -> None:
    os.read(lifeline, 1)  # blocks until the launcher's end closes; it never writes
    server.log.info("make run is gone: shutting down")
    os.kill(os.getpid(), signal.SIGTERM)


def post_fork(server, worker):
    """Make a SIGTERM, SIGINT or SIGQUIT that arrives while the worker boots stop it once booted.

    The gevent worker patches the standard library before it installs its own signal handlers, and
    until then the master's handlers, inherited through fork, would swallow the signal: the worker
    would serve on until the master's graceful timeout ran out and it was killed.
    """

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
