"""Group commit: requests for one key that queue while a batch for that key runs go together next.

On a hot event every booking waits for the event's row lock, and the time that lock is held bounds
the throughput. So a worker process sends the bookings of an event that arrive while the previous
batch for that event is in the database as one statement (services.book, `book_many`), which
books them one by one, in arrival order, under one hold of the lock.

No thread waits for a batch to fill: the first request for an idle key is sent at once, alone,
and only requests that would otherwise have queued for the lock travel together. The thread that
sends a batch (its key's leader) hands the lead to the oldest waiting request once it is done, so
each thread returns as soon as its own batch has been answered.
"""

from __future__ import annotations

import copy
import threading
import weakref
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
            raise self.error
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
            queue = self.queues.get(key)
            if queue is None:
                queue = self.queues[key] = deque()
                pending.leads = True
            queue.append(pending)
        if not pending.leads:
            pending.done.wait()  # until a leader sent it, or handed this one the lead
        if pending.leads:
            self._lead(key, queue, send)
        return pending.outcome()

    def _lead(self, key: Hashable, queue: deque[_Pending], send: Send) -> None:
        """Send the queue's first MAX_BATCH requests (this thread's among them), then pass the lead on."""
        with self.lock:
            batch = [queue.popleft() for _ in range(min(len(queue), MAX_BATCH))]
        _send(key, batch, send)
        with self.lock:
            successor = queue[0] if queue else None
            if successor is None:
                del self.queues[key]
            else:
                successor.leads = True
        for waiting in batch if successor is None else [*batch, successor]:
            waiting.done.set()


def _send(key: Hashable, batch: list[_Pending], send: Send) -> None:
    try:
        results = send(key, [pending.item for pending in batch])
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
    except Exception as error:  # noqa: BLE001 - each caller of the batch raises it, in its own thread
        for pending in batch:
            pending.error = copy.copy(error)


_batchers: weakref.WeakKeyDictionary[Any, Batcher] = weakref.WeakKeyDictionary()
_batchers_lock = threading.Lock()


def batcher(owner: Any) -> Batcher:
    """`owner`'s one Batcher (an engine's, say: gunicorn's workers each build their own engine)."""
    with _batchers_lock:
        if owner not in _batchers:
            _batchers[owner] = Batcher()
        return _batchers[owner]
