"""hot-webhook's side of the bench: a receiver on loopback, one dispatcher process, and per measured run
a webhook for every event pointing at the receiver, with the dispatcher's throughput and lag measured.

The receiver answers 204 at once and only counts, so the figures are the dispatcher's (claim, sign,
send, record), not a receiver's. The dispatcher is `python -m app.workers` with the
server's own environment (DATABASE_URL, WEBHOOK_SECRET_KEY, WEBHOOK_ALLOW_PRIVATE=true for loopback),
as `make run` starts it. Each run registers its own webhook through the API and deletes it afterwards
(its messages go with it, ON DELETE CASCADE), so no other scenario writes messages and each run starts
with an empty outbox.
"""

from __future__ import annotations

import contextlib
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
from sqlalchemy import Engine, text

from app.notifications import store
from bench.load import CPUS
from bench.settings import ROOT

LAG_SAMPLE_EVERY_S = 0.5
DRAIN_POLL_S = 0.2
DISPATCHER_READY_TIMEOUT_S = 30
DISPATCHER_STOP_TIMEOUT_S = 30

ANY_PENDING = text("SELECT EXISTS (SELECT 1 FROM webhook_messages WHERE webhook_id = :id AND state = 'pending')")
OUTCOMES = text("""
SELECT count(*) AS written, count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'failed') AS failed, count(*) FILTER (WHERE attempts > 1) AS retried
  FROM webhook_messages WHERE webhook_id = :id
""")
DISPATCHER_ALIVE = text("SELECT EXISTS (SELECT 1 FROM webhook_dispatchers WHERE heartbeat_at > now() - interval '5 s')")


class Receiver:
    """A threaded HTTP server on loopback that answers every POST with 204 and counts them (and their
    distinct webhook-id headers: at-least-once delivery may send one twice)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = 0
        self.ids: set[str] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def count(self, message_id: str | None) -> None:
        with self.lock:
            self.received += 1
            self.ids.add(message_id)

    def counts(self) -> tuple[int, int]:
        """(deliveries received, distinct message ids among them)."""
        with self.lock:
            return self.received, len(self.ids)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool expects

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.count(self.headers.get("webhook-id"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args) -> None:  # one line per delivery would cost more than the answer
            pass

    return Handler


class DispatcherProcess:
    """`python -m app.workers` with `env`, for the length of a `with`; ready once its heartbeat
    row is in the database."""

    def __init__(self, env: dict, engine: Engine, log_path: Path) -> None:
        self.env, self.engine, self.log_path = env, engine, log_path
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> DispatcherProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.workers"], cwd=ROOT, env=self.env, stdout=log, stderr=log
            )
        self._await_heartbeat()
        return self

    def _await_heartbeat(self) -> None:
        deadline = time.monotonic() + DISPATCHER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the dispatcher exited with {self.process.returncode}; see {self.log_path}")
            with self.engine.connect() as conn:
                if conn.execute(DISPATCHER_ALIVE).scalar_one():
                    return
            time.sleep(DRAIN_POLL_S)  # polling its heartbeat, not ordering
        raise RuntimeError(f"the dispatcher sent no heartbeat in {DISPATCHER_READY_TIMEOUT_S}s; see {self.log_path}")

    def __exit__(self, *_exc) -> None:
        self.process.send_signal(signal.SIGTERM)  # it finishes its sends in flight
        try:
            self.process.wait(timeout=DISPATCHER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def cpu_seconds(self) -> float:
        """The dispatcher's CPU time so far, its threads included."""
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system


class WebhookSide:
    """The receiver and the dispatcher beside one server; `measured(...)` around each run of the load."""

    def __init__(self, server_url: str, server_env: dict, engine: Engine, log_path: Path, drain_timeout_s: int):
        self.server_url, self.admin_token, self.engine = server_url, server_env["ADMIN_TOKEN"], engine
        self.drain_timeout_s = drain_timeout_s
        self.stack = contextlib.ExitStack()
        self.receiver = Receiver()
        self.dispatcher = DispatcherProcess(server_env, engine, log_path)

    def __enter__(self) -> WebhookSide:
        self.stack.enter_context(self.receiver)
        self.stack.enter_context(self.dispatcher)
        return self

    def __exit__(self, *exc) -> None:
        self.stack.__exit__(*exc)

    def processes(self) -> list[psutil.Process]:
        return [psutil.Process(self.dispatcher.process.pid)]

    @contextlib.contextmanager
    def measured(self) -> Iterator[dict]:
        """A webhook for every event while the body runs the load; then the backlog drained (up to the
        timeout). The dict yielded is filled in on the way out with what `_figures` reports."""
        figures: dict = {}
        webhook_id = self._api("POST", "/api/webhooks", {"url": self.receiver.url})["webhook"]["id"]
        try:
            start = self._mark()
            with LagSampler(self.engine) as lag:
                yield figures
            load_end = self._mark()
            drained = self._drain(webhook_id)
            figures.update(self._figures(webhook_id, start, load_end, self._mark(), drained, lag.samples))
        finally:
            self._api("DELETE", f"/api/webhooks/{webhook_id}")

    def _mark(self) -> dict:
        received, distinct = self.receiver.counts()
        return {
            "at": time.monotonic(),
            "received": received,
            "distinct": distinct,
            "cpu": self.dispatcher.cpu_seconds(),
        }

    def _drain(self, webhook_id: str) -> bool:
        """Wait until the webhook has nothing pending; False if the timeout came first."""
        deadline = time.monotonic() + self.drain_timeout_s
        with self.engine.connect() as conn:
            while conn.execute(ANY_PENDING, {"id": webhook_id}).scalar_one():
                if time.monotonic() > deadline:
                    return False
                time.sleep(DRAIN_POLL_S)  # polling the outbox, not ordering
        return True

    def _figures(
        self, webhook_id: str, start: dict, load_end: dict, end: dict, drained: bool, lags: list[float]
    ) -> dict:
        with self.engine.connect() as conn:
            outcomes = dict(conn.execute(OUTCOMES, {"id": webhook_id}).mappings().one())
        load_s, drain_s = load_end["at"] - start["at"], end["at"] - load_end["at"]
        during, after = load_end["received"] - start["received"], end["received"] - load_end["received"]
        return {
            "messages": outcomes["written"],
            "delivered_during_load": during,
            "delivered_per_s_during_load": round(during / load_s, 1),
            "delivered_after_load": after,
            "drain_s": round(drain_s, 2),
            "delivered_per_s_draining": round(after / drain_s, 1) if drain_s > 0 else None,
            "drained": drained,
            "undelivered": outcomes["pending"] + outcomes["failed"],
            "retried": outcomes["retried"],
            "duplicates": (end["received"] - start["received"]) - (end["distinct"] - start["distinct"]),
            "lag_s": {
                "p50": _round(statistics.median(lags)) if lags else None,
                "max": _round(max(lags)) if lags else None,
                "samples": len(lags),
            },
            "dispatcher_cpu_share": {
                "during_load": round((load_end["cpu"] - start["cpu"]) / (load_s * CPUS), 3),
                "draining": round((end["cpu"] - load_end["cpu"]) / (drain_s * CPUS), 3) if drain_s > 0 else None,
            },
        }

    def _api(self, method: str, path: str, body: dict | None = None) -> dict | None:
        request = urllib.request.Request(
            self.server_url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")


class LagSampler:
    """The age of the oldest undelivered message (the dispatcher's own lag query), every
    LAG_SAMPLE_EVERY_S seconds for the length of a `with`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, name="bench-lag", daemon=True)

    def __enter__(self) -> LagSampler:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        self.thread.join()

    def _sample(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.wait(LAG_SAMPLE_EVERY_S):
                self.samples.append(store.oldest_pending_age_s(conn))


def _round(value: float) -> float:
    return round(value, 3)
