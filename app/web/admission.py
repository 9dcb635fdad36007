"""Admission in a worker process: reads go first, and a bounded number of writes run at once, in order.

Under a flash sale the writes alone can keep every core busy. A worker (one gevent loop) runs the
Python of every request it has started in turns, so a status read that arrives behind dozens of
bookings waits for all of their turns. Hence two rules, per worker:
- a write (POST) does not start while a read (GET) is in progress, for at most `read_priority_s`:
  reads are short, and the bound keeps a stream of reads from holding writes back for longer;
- then at most `write_slots` writes run at once; the others wait, not on the CPU, and start in the
  order they queued (a freed slot passes straight to the oldest, so no write starves).
A write's body is read before it queues, so a slow upload never holds a slot.
"""

from __future__ import annotations

import threading
from collections import deque

from flask import Flask, g, request

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Admission:
    """The gate every request of a worker passes; thread- and greenlet-safe (gevent patches threading)."""

    Turn = threading.Event  # a queued write's signal that it has been handed a slot

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
            turn = self.Turn()
            self.waiting.append(turn)
        try:
            turn.wait()  # end_write hands this write its slot
        except BaseException:  # its greenlet or thread was killed: its place or slot goes on
            self._give_up(turn)
            raise

    def _give_up(self, turn: threading.Event) -> None:
        with self.lock:
            handed_a_slot = turn not in self.waiting
            if not handed_a_slot:
                self.waiting.remove(turn)
        if handed_a_slot:
            self.end_write()

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
        if request.method in READ_METHODS:
            admission.start_read()
            g.end_admission = admission.end_read
        else:
            request.get_data(cache=True)  # the upload, however slow, before a slot is taken
            admission.start_write()
            g.end_admission = admission.end_write

    def release(_error: BaseException | None) -> None:
        end = g.pop("end_admission", None)
        if end is not None:
            end()

    app.before_request(admit)
    app.teardown_request(release)
