"""Run the background process: `python -m app.workers` (`make run` starts one beside gunicorn).

It needs DATABASE_URL and WEBHOOK_SECRET_KEY (in development the key generated under instance/), and
nothing else: any number may run, on any machines, against one database. SIGTERM or Ctrl-C stops it
after the passes and sends in flight (a sweep stops between events); so does the end of `make run`'s
lifeline pipe, however `make run` died (app/operations/serve.py). With WEBHOOK_DISPATCHER_PORT set it
serves, on that port, /metrics and /healthz (200 while every unit is healthy, app/workers/loop.py, else
503): its own probe.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from app.config import Config
from app.database.engine import build_engine
from app.observability.logs import configure_logging
from app.observability.metrics import registry
from app.workers.lifeline import LIFELINE_FD_VARIABLE
from app.workers.loop import Worker
from app.workers.units import background_units, pool_size

PORT_VARIABLE = "WEBHOOK_DISPATCHER_PORT"


def main() -> int:
    config = Config.from_env()
    configure_logging(config.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per send is the dispatcher's own
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    lifeline = os.environ.pop(LIFELINE_FD_VARIABLE, None)
    if lifeline is not None:
        threading.Thread(target=_stop_after, args=(int(lifeline), stop), name="lifeline", daemon=True).start()
    engine = build_engine(config, pool_size=pool_size(config))
    worker = Worker(background_units(engine, config, stop))
    probe = _serve_probe(worker, int(os.environ[PORT_VARIABLE])) if os.environ.get(PORT_VARIABLE) else None
    try:
        worker.run(stop)
    finally:
        if probe is not None:
            probe.shutdown()
        engine.dispose()
    return 0


def _stop_after(lifeline: int, stop: threading.Event) -> None:
    os.read(lifeline, 1)  # blocks until the launcher's end closes; it never writes
    logging.getLogger(__name__).info("make run is gone: stopping")
    stop.set()


def _serve_probe(worker: Worker, port: int) -> WSGIServer:
    metrics_app = make_wsgi_app(registry())

    def probe(environ, start_response):
        if environ["PATH_INFO"] != "/healthz":
            return metrics_app(environ, start_response)
        healthy = worker.healthy()
        start_response("200 OK" if healthy else "503 Service Unavailable", [("Content-Type", "application/json")])
        return [b'{"status":"ok"}' if healthy else b'{"status":"unavailable"}']

    server = make_server("0.0.0.0", port, probe, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="worker-probe", daemon=True).start()
    return server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *_args) -> None:  # probes every few seconds would drown the JSON log
        pass


if __name__ == "__main__":
    sys.exit(main())
