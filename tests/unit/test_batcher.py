"""The group-commit Batcher on its own: who is sent with whom, who gets which result, who leads next.

`Gate` stands in for the database: its first batch waits until the test opens it, so that the test
can queue requests behind a running batch and know exactly which batch each one will travel in.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from app.database import group_commit
from app.database.group_commit import Batcher
from tests.helpers import waiting

DEADLINE_S = 10


class Gate:
    """A `send` that records its batches, answers item * 10, and holds the first batch until opened."""

    def __init__(self, fail_batch: int | None = None) -> None:
        self.batches: list[list] = []
        self.opened = threading.Event()
        self.fail_batch = fail_batch

    def __call__(self, key, items):
        self.batches.append(list(items))
        if len(self.batches) == 1:
            assert self.opened.wait(DEADLINE_S)
        if len(self.batches) == self.fail_batch:
            raise RuntimeError(f"batch {self.fail_batch} failed")
        return [item * 10 for item in items]


wait_until = partial(waiting.wait_until, deadline_s=DEADLINE_S, interval_s=0.001)


def sending(gate: Gate) -> None:
    wait_until(lambda: gate.batches, "the first batch reached the gate")


def queued(batcher: Batcher, key, count: int) -> None:
    wait_until(lambda: len(batcher.queues.get(key, ())) >= count, f"{count} requests queued behind the batch")


def submit_behind_a_running_batch(batcher: Batcher, gate: Gate, pool, items: list[int]) -> list:
    """Submit items[0] (whose batch waits at the gate), then the others one by one behind it."""
    futures = [pool.submit(batcher.submit, "event", items[0], gate)]
    sending(gate)
    for number, item in enumerate(items[1:], start=1):
        futures.append(pool.submit(batcher.submit, "event", item, gate))
        queued(batcher, "event", number)  # arrival order is queue order
    return futures


def test_a_request_for_an_idle_key_is_sent_at_once_on_its_own():
    gate, batcher = Gate(), Batcher()
    gate.opened.set()

    assert batcher.submit("event", 1, gate) == 10
    assert gate.batches == [[1]]
    assert batcher.queues == {}


def test_requests_queued_behind_a_running_batch_go_together_in_arrival_order():
    gate, batcher = Gate(), Batcher()
    with ThreadPoolExecutor(4) as pool:
        futures = submit_behind_a_running_batch(batcher, gate, pool, [1, 2, 3, 4])
        gate.opened.set()
        results = [future.result(DEADLINE_S) for future in futures]

    assert gate.batches == [[1], [2, 3, 4]]
    assert results == [10, 20, 30, 40]
    assert batcher.queues == {}


def test_a_batch_takes_at_most_max_batch_requests(monkeypatch):
    monkeypatch.setattr(group_commit, "MAX_BATCH", 2)
    gate, batcher = Gate(), Batcher()
    with ThreadPoolExecutor(4) as pool:
        futures = submit_behind_a_running_batch(batcher, gate, pool, [1, 2, 3, 4])
        gate.opened.set()
        results = [future.result(DEADLINE_S) for future in futures]

    assert gate.batches == [[1], [2, 3], [4]]
    assert results == [10, 20, 30, 40]


def test_every_request_of_a_failed_batch_raises_its_error_and_the_next_batch_is_still_sent():
    gate, batcher = Gate(fail_batch=2), Batcher()
    with ThreadPoolExecutor(4) as pool:
        futures = submit_behind_a_running_batch(batcher, gate, pool, [1, 2, 3])
        gate.opened.set()
        assert futures[0].result(DEADLINE_S) == 10
        for failed in futures[1:]:
            with pytest.raises(RuntimeError, match="batch 2 failed"):
                failed.result(DEADLINE_S)

    assert batcher.submit("event", 5, gate) == 50
    assert gate.batches == [[1], [2, 3], [5]]


def test_a_result_of_the_wrong_length_fails_the_batch_instead_of_misrouting_results():
    batcher = Batcher()

    with pytest.raises(ValueError):
        batcher.submit("event", 1, lambda key, items: [])
    assert batcher.queues == {}


def test_a_running_batch_of_one_key_does_not_hold_back_another_key():
    gate, batcher = Gate(), Batcher()
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(batcher.submit, "event", 1, gate)
        sending(gate)

        assert batcher.submit("other event", 2, lambda key, items: [key]) == "other event"
        gate.opened.set()
        assert held.result(DEADLINE_S) == 10


class Interrupted(BaseException):
    """What killing a greenlet or thread raises in it (GreenletExit, say): not an Exception."""


def victim_pending(monkeypatch, victim_item) -> None:
    """Make the request of `victim_item` be interrupted the moment it is woken (to lead, or with a result)."""

    class WokenThenInterrupted(threading.Event):
        def wait(self, timeout=None):
            super().wait(timeout)
            raise Interrupted

    class Pending(group_commit._Pending):
        def __init__(self, item):
            super().__init__(item)
            if item == victim_item:
                self.done = WokenThenInterrupted()

    monkeypatch.setattr(group_commit, "_Pending", Pending)


def test_a_waiter_interrupted_as_it_is_handed_the_lead_passes_it_on(monkeypatch):
    victim_pending(monkeypatch, "victim")
    gate, batcher = Gate(), Batcher()
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(batcher.submit, "event", 1, gate)
        sending(gate)
        victim = pool.submit(batcher.submit, "event", "victim", gate)
        queued(batcher, "event", 1)
        last = pool.submit(batcher.submit, "event", 3, gate)
        queued(batcher, "event", 2)
        gate.opened.set()

        assert (first.result(DEADLINE_S), last.result(DEADLINE_S)) == (10, 30)
        with pytest.raises(Interrupted):
            victim.result(DEADLINE_S)
    assert gate.batches == [[1], [3]]
    assert batcher.queues == {}


def test_a_leader_interrupted_while_sending_tells_its_batch_and_the_queue_goes_on():
    def interrupted(key, items):
        raise Interrupted

    gate, batcher = Gate(), Batcher()
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(batcher.submit, "event", 1, gate)
        sending(gate)
        leader = pool.submit(batcher.submit, "event", 2, interrupted)
        queued(batcher, "event", 1)
        follower = pool.submit(batcher.submit, "event", 3, gate)
        queued(batcher, "event", 2)
        gate.opened.set()

        assert first.result(DEADLINE_S) == 10
        for both in (leader, follower):
            with pytest.raises(Interrupted):
                both.result(DEADLINE_S)
    assert batcher.submit("event", 4, gate) == 40
    assert batcher.queues == {}
