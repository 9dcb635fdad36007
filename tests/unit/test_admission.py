"""Admission: at most N writes at once, started in arrival order, and reads first (app/admission.py)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from app.admission import Admission

DEADLINE_S = 10


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)  # polling interval, not ordering


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


def test_a_new_write_cannot_overtake_a_waiting_one_even_when_a_slot_frees():
    admission, started = Admission(write_slots=1, read_priority_s=0), []
    admission.start_write()
    with ThreadPoolExecutor(1) as pool:
        waiting = queue_writes(admission, pool, 1, started)[0]
        admission.end_write()
        waiting.result(DEADLINE_S)

    assert admission.free_slots == 0  # handed over, never freed in between


def test_a_write_waits_while_a_read_is_in_progress():
    admission = Admission(write_slots=4, read_priority_s=DEADLINE_S)
    admission.start_read()
    written = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: (admission.start_write(), written.set()))
        assert not written.wait(0.05)  # bounded wait: a write must not start during the read
        admission.end_read()
        assert written.wait(DEADLINE_S)


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
