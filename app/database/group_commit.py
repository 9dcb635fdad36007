"""Group commit: requests for one key that queue while a batch for that key runs go together next.

On a hot event every booking waits for the event's row lock, and the time that lock is held bounds
the throughput. So a worker process sends the bookings of an event that arrive while the previous
batch for that event is in the database as one statement (services.BookTicket, `book_many`), which
books them one by one, in arrival order, under one hold of the lock.

No thread waits for a batch to fill: the first request for an idle key is sent at once, alone,
and only requests that would otherwise have queued for the lock travel together. The thread that
sends a batch (its key's leader) hands the lead to the oldest waiting request once it is done, so
each thread returns as soon as its own batch has been answered. Each app has one Batcher, made by
the database extension beside its engine (app/database/engine.py): gunicorn's workers each build
their own app, so a worker's bookings batch with that worker's alone.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Bounds one statement's length (and the lock hold) when hundreds of requests queue for one key.
MAX_BATCH = 64

Send = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


@dataclass(eq=False)
class _Pending:
    """One request's place in a queue; `done` is set once it has its result or error, or must lead."""

    item: Any
    done: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    result: Any = None
    error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            # A copy per caller, as several threads raise it at once; the original, with the
            # leader's traceback, is its cause.
            raise copy.copy(self.error) from self.error
        return self.result


class Batcher:
    """Per key, the requests waiting to be sent; a key is in `queues` while a batch for it runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: dict[Hashable, deque[_Pending]] = {}

    def submit(self, key: Hashable, item: Any, send: Send) -> Any:
        """`item`'s result: `send(key, items)` returns one result per item, in order, for a batch.

        If `send` raises, none of the batch's items took effect, and each of their callers raises it.
        """
        pending = _Pending(item)
        with self.lock:
            pending.leads = key not in self.queues
            self.queues.setdefault(key, deque()).append(pending)
        if not pending.leads:
            self._wait(key, pending)
        if pending.leads:
            self._lead(key, send)
        return pending.outcome()

    def _wait(self, key: Hashable, pending: _Pending) -> None:
        """Until a leader sent `pending`, or handed it the lead; an interrupted waiter leaves cleanly."""
        try:
            pending.done.wait()
        except BaseException:  # its greenlet or thread was killed: the others must not wait for it
            with self.lock:
                if pending in self.queues.get(key, ()):
                    self.queues[key].remove(pending)
            if pending.leads:
                self._pass_lead(key)
            raise

    def _lead(self, key: Hashable, send: Send) -> None:
        """Send the queue's first MAX_BATCH requests (this thread's among them), then pass the lead on."""
        with self.lock:
            queue = self.queues[key]
            batch = [queue.popleft() for _ in range(min(len(queue), MAX_BATCH))]
        try:
            _send(key, batch, send)
        finally:  # even if this thread is interrupted: its batch is told, and the queue goes on
            for pending in batch:
                pending.done.set()
            self._pass_lead(key)

    def _pass_lead(self, key: Hashable) -> None:
        """Wake the oldest waiting request to lead the next batch, or retire the idle key."""
        with self.lock:
            queue = self.queues[key]
            successor = queue[0] if queue else None
            if successor is None:
                del self.queues[key]
            else:
                successor.leads = True
        if successor is not None:
            successor.done.set()


def _send(key: Hashable, batch: list[_Pending], send: Send) -> None:
    try:
        results = send(key, [pending.item for pending in batch])
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
    except BaseException as error:  # each caller of the batch raises it, in its own thread
        for pending in batch:
            pending.error = error
        if not isinstance(error, Exception):
            raise  # the leader itself was interrupted: it stops here, after telling its batch
