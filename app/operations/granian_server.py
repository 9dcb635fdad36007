"""How granian serves the app (`make run`, `make cluster`, `make bench`): one place for its settings.

Granian is a Rust HTTP server; with its WSGI interface, its Rust runtime parses HTTP and holds the
connections, and hands each request to one of a worker's blocking threads, which runs the Flask app.
A booking spends most of its time waiting (for PostgreSQL, for its turn at the event's row lock, for
its batch: app/database/group_commit.py), and a waiting thread releases the GIL, so a few threads per
worker keep it busy; `WRITE_CONCURRENCY` (app/web/admission.py) bounds the writes among them.
docs/performance.md has the measurements behind each number.
"""

from __future__ import annotations

import os
import sys

# One worker process per core: each runs Python under its own GIL.
DEFAULT_WORKERS = os.cpu_count() or 2
# Python threads per worker that run requests. A blocked request (waiting for the database or its
# batch) holds one; admission lets WRITE_CONCURRENCY writes run and parks the rest, which hold one too.
DEFAULT_BLOCKING_THREADS = 16
# Requests a worker takes in at once, beyond which its connections wait in the kernel's backlog.
DEFAULT_BACKPRESSURE = 128


def granian_command(app_spec: str, port: str, env: dict | None = None) -> list[str]:
    """The command line that serves `app_spec` ("module:variable") on `port`, all interfaces."""
    env = os.environ if env is None else env
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--host",
        "0.0.0.0",
        "--port",
        port,
        "--http",
        "1",
        "--no-ws",
        "--workers",
        str(_setting(env, "WEB_CONCURRENCY", DEFAULT_WORKERS)),
        "--blocking-threads",
        str(_setting(env, "WEB_THREADS", DEFAULT_BLOCKING_THREADS)),
        "--backpressure",
        str(_setting(env, "WEB_BACKPRESSURE", DEFAULT_BACKPRESSURE)),
        "--workers-kill-timeout",
        "30",
        "--log-level",
        "warning",
        app_spec,
    ]


def granian_settings(env: dict | None = None) -> dict:
    """The figures `granian_command` uses under `env`, for the bench's report."""
    env = os.environ if env is None else env
    return {
        "workers": _setting(env, "WEB_CONCURRENCY", DEFAULT_WORKERS),
        "blocking_threads": _setting(env, "WEB_THREADS", DEFAULT_BLOCKING_THREADS),
        "backpressure": _setting(env, "WEB_BACKPRESSURE", DEFAULT_BACKPRESSURE),
    }


def _setting(env, name: str, default: int) -> int:
    return int(env.get(name) or default)
