"""Admission in a worker process: reads go first, and a bounded number of writes run at once, in order.

Under a flash sale the writes alone can keep every core busy. A worker (one gevent loop) runs the
Python of every request it has started in turns, so a status read that arrives behind dozens of
bookings waits for all of their turns. Hence two rules, per worker:
- at most `write_slots` writes (POST requests) run at once; the others wait, not on the CPU, and
  start in arrival order (no newcomer overtakes a waiting one, so no write starves);
- a write does not start while a read (GET) is in progress, for at most `read_priority_s`: reads
  are short, and the bound keeps a stream of reads from holding writes back for longer.
Waiting writes also let more bookings of one event queue for the same batch (app/group_commit.py).
"""

from __future__ import annotations

import threading
from collections import deque

from flask import Flask, g, request

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Admission:
    """The gate every request of a worker passes; thread- and greenlet-safe (gevent patches threading)."""

    def __init__(self, write_slots: int, read_priority_s: float) -> None:
        self.lock = threading.Lock()
        self.free_slots = write_slots
        self.waiting: deque[threading.Event] = deque()
        self.reads = 0
        self.no_reads = threading.Event()
        self.no_reads.set()
        self.read_priority_s = read_priority_s

    def start_read(self) -> None:
        with self.lock:
            self.reads += 1
            self.no_reads.clear()

    def end_read(self) -> None:
        with self.lock:
            self.reads -= 1
            if self.reads == 0:
                self.no_reads.set()

    def start_write(self) -> None:
        """Return once this write may run: reads done (or waited for long enough) and a slot taken."""
        self.no_reads.wait(self.read_priority_s)
        with self.lock:
            if self.free_slots and not self.waiting:
                self.free_slots -= 1
                return
            turn = threading.Event()
            self.waiting.append(turn)
        turn.wait()  # end_write hands this write its slot

    def end_write(self) -> None:
        with self.lock:
            if self.waiting:
                self.waiting.popleft().set()  # the slot passes straight on: nobody can overtake
            else:
                self.free_slots += 1


def init_app(app: Flask, config) -> None:
    """Pass each request of `app` through one Admission (per process: each worker builds its app)."""
    admission = Admission(config.write_concurrency, config.read_priority_ms / 1000)

    def admit() -> None:
        g.admitted_as = "read" if request.method in READ_METHODS else "write"
        getattr(admission, f"start_{g.admitted_as}")()

    def release(_error: BaseException | None) -> None:
        kind = g.pop("admitted_as", None)
        if kind is not None:
            getattr(admission, f"end_{kind}")()

    app.before_request(admit)
    app.teardown_request(release)
