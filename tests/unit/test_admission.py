"""Admission: reads first, then at most N writes at once, started in the order they queued (app/web/admission.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from app.web.admission import Admission
from tests.helpers import waiting

DEADLINE_S = 10


wait_until = partial(waiting.wait_until, deadline_s=DEADLINE_S, interval_s=0.001)


def queue_writes(admission: Admission, pool, count: int, started: list) -> list:
    """Start `count` writes one after another, each queued before the next arrives."""
    futures = []
    for number in range(count):
        futures.append(pool.submit(lambda n=number: (admission.start_write(), started.append(n))))
        wait_until(lambda n=number: len(admission.waiting) == n + 1, f"write {number} queued")
    return futures


def test_writes_beyond_the_slots_wait_and_start_in_arrival_order():
    admission, started = Admission(write_slots=1, read_priority_s=0), []
    admission.start_write()  # the one slot is taken
    with ThreadPoolExecutor(3) as pool:
        futures = queue_writes(admission, pool, 3, started)
        assert started == []
        for number in range(3):
            admission.end_write()  # the slot passes to the oldest waiting write
            futures[number].result(DEADLINE_S)
            assert started == list(range(number + 1))


def test_a_freed_slot_goes_to_the_waiting_write_not_to_a_newcomer():
    admission, started = Admission(write_slots=1, read_priority_s=0), []
    admission.start_write()
    with ThreadPoolExecutor(2) as pool:
        waiting = queue_writes(admission, pool, 1, started)[0]
        admission.end_write()
        waiting.result(DEADLINE_S)
        newcomer = pool.submit(admission.start_write)
        wait_until(lambda: len(admission.waiting) == 1, "the newcomer queued")

        assert admission.free_slots == 0 and not newcomer.done()
        admission.end_write()
        newcomer.result(DEADLINE_S)


class CountingEvent(threading.Event):
    """An Event that tells how many threads wait on it."""

    waiters = 0

    def wait(self, timeout=None):
        self.waiters += 1
        try:
            return super().wait(timeout)
        finally:
            self.waiters -= 1


def test_a_write_does_not_take_a_slot_while_a_read_is_in_progress():
    admission = Admission(write_slots=4, read_priority_s=DEADLINE_S)
    admission.no_reads = CountingEvent()
    admission.start_read()
    with ThreadPoolExecutor(1) as pool:
        write = pool.submit(admission.start_write)
        wait_until(lambda: admission.no_reads.waiters == 1, "the write waits for the read")

        assert admission.free_slots == 4
        admission.end_read()
        write.result(DEADLINE_S)
    assert admission.free_slots == 3


def test_a_write_waits_for_reads_no_longer_than_the_read_priority():
    admission = Admission(write_slots=4, read_priority_s=0.01)
    admission.start_read()

    admission.start_write()  # returns although the read is still in progress

    assert admission.reads == 1 and admission.free_slots == 3


def test_reads_never_wait_for_writes():
    admission = Admission(write_slots=1, read_priority_s=0)
    admission.start_write()

    admission.start_read()  # the only write slot is taken, yet the read starts at once

    assert admission.reads == 1


class Interrupted(BaseException):
    """What killing a greenlet or thread raises in it (GreenletExit, say): not an Exception."""


class InterruptedWhenWoken(threading.Event):
    def wait(self, timeout=None):
        super().wait(timeout)
        raise Interrupted


class InterruptedAtOnce(threading.Event):
    def wait(self, timeout=None):
        raise Interrupted


def test_a_write_interrupted_while_queued_leaves_the_queue():
    admission = Admission(write_slots=1, read_priority_s=0)
    admission.start_write()
    admission.Turn = InterruptedAtOnce

    with pytest.raises(Interrupted):
        admission.start_write()
    assert list(admission.waiting) == []
    admission.end_write()
    assert admission.free_slots == 1


def test_a_write_interrupted_as_it_is_handed_a_slot_passes_the_slot_on():
    admission = Admission(write_slots=1, read_priority_s=0)
    admission.start_write()
    admission.Turn = InterruptedWhenWoken
    with ThreadPoolExecutor(1) as pool:
        interrupted = pool.submit(admission.start_write)
        wait_until(lambda: len(admission.waiting) == 1, "the write queued")
        admission.end_write()  # hands the slot to the write, which is interrupted

        with pytest.raises(Interrupted):
            interrupted.result(DEADLINE_S)
    assert admission.free_slots == 1
