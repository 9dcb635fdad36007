"""structlog set-up: JSON lines on stdout, with the request's id bound for the whole request."""

from __future__ import annotations

import logging
import sys

import structlog

# Tracebacks as JSON, without each frame's local variables (structlog's default shows them): a local
# can hold a secret (the admin token, a database URL with its password) or a client's personal data.
TRACEBACKS = structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))


def configure_logging(level: str) -> None:
    """Route structlog and the standard library's loggers to JSON lines on stdout."""
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, TRACEBACKS, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_LineLogger,
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(shared, numeric_level)


class _LineLogger:
    """Writes each line to the `sys.stdout` of the moment with one write() call.

    gunicorn's workers share one stdout. print() writes a line's newline separately, and with
    PYTHONUNBUFFERED set (as containers often do) each write is a system call of its own: two
    workers' lines then interleave into one line that no JSON parser reads. (A single write is
    atomic on a pipe up to 4 KiB: a longer line, such as a traceback, may still be split there.)
    """

    def __init__(self, *_args) -> None:
        pass

    def msg(self, message: str) -> None:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()

    debug = info = warning = error = critical = exception = msg


class _StdoutHandler(logging.StreamHandler):
    """Writes to the `sys.stdout` of the moment, which a test runner may swap and close."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def _route_stdlib_logging(shared: list, level: int) -> None:
    """Third-party libraries log through `logging`; give their records the same JSON shape."""
    handler = _StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                TRACEBACKS,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
