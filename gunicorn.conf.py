"""Gunicorn settings for `make run` (`python -m app.serve` starts `gunicorn -c gunicorn.conf.py wsgi:app`)."""

import multiprocessing
import os

# All interfaces, so that the service is reachable from outside a container as well as on loopback.
bind = f"0.0.0.0:{os.environ.get('PORT') or 8000}"

# Threads per worker: requests spend most of their time waiting on PostgreSQL, which releases the GIL,
# so a few threads per process serve more requests than processes alone, at a lower memory cost.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 4)

# Processes: 2 per core keeps the cores busy while some workers wait on I/O (gunicorn's usual advice).
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * multiprocessing.cpu_count())

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


def child_exit(server, worker):
    """A worker is gone: drop its live gauges from the metrics that /metrics adds up (app/metrics.py)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
