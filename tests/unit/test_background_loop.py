"""The background process's one loop shape (app/workers/loop.py): passes at a unit's pace, at once while a
backlog is left, outliving a failing pass, health per unit, and a stop that closes every unit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.workers.loop import Unit, Worker
from tests.helpers.waiting import wait_until

SLOW_PACE_S = 60.0  # longer than any test waits: a pass that follows at once did not wait its pace


@contextmanager
def running(*units: Unit) -> Iterator[Worker]:
    worker, stop = Worker(list(units)), threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


def counting_unit(passes: list[int], backlog_for: int = 0, fail_first: bool = False, **settings) -> Unit:
    """A unit that counts its passes; the first `backlog_for` leave a backlog, the first fails if asked."""

    def run_once(_stop: threading.Event) -> bool:
        passes.append(len(passes) + 1)
        if fail_first and len(passes) == 1:
            raise RuntimeError("a bug in the first pass")
        return len(passes) <= backlog_for

    return Unit("counting", run_once, settings.get("pace_s", SLOW_PACE_S), settings.get("healthy_within_s", 60.0))


def test_a_pass_that_leaves_a_backlog_is_followed_at_once_and_then_the_unit_waits_its_pace():
    passes: list[int] = []
    with running(counting_unit(passes, backlog_for=3)):
        wait_until(lambda: len(passes) >= 4, "three passes with a backlog, then one more")

        assert len(passes) == 4  # the fourth left none: the fifth waits a minute


def test_a_unit_outlives_a_failing_pass_and_passes_again_at_its_pace():
    passes: list[int] = []
    with running(counting_unit(passes, fail_first=True, pace_s=0.05)) as worker:
        wait_until(lambda: len(passes) >= 2, "a second pass after the failed one")
        wait_until(worker.healthy, "the unit is healthy once a pass completed")


def test_a_woken_unit_passes_before_its_time():
    passes: list[int] = []
    unit = counting_unit(passes)
    with running(unit):
        wait_until(lambda: len(passes) == 1, "the first pass")
        unit.wake.set()
        wait_until(lambda: len(passes) == 2, "a pass as soon as it is woken")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death under test
def test_the_worker_is_unhealthy_once_a_units_thread_died():
    def dies(_stop: threading.Event) -> bool:
        raise SystemExit  # what no pass catches: the thread ends

    passes: list[int] = []
    with running(counting_unit(passes, pace_s=0.05), Unit("dying", dies, 0.05, 60.0)) as worker:
        wait_until(lambda: len(passes) >= 2, "the healthy unit passes")

        assert not worker.healthy()


def test_a_unit_whose_last_completed_pass_is_too_old_is_unhealthy():
    started, release = threading.Event(), threading.Event()

    def hangs_on_the_second_pass(_stop: threading.Event) -> bool:
        if started.is_set():
            release.wait()
        started.set()
        return True  # the second pass follows at once, and hangs

    with running(Unit("hanging", hangs_on_the_second_pass, SLOW_PACE_S, healthy_within_s=0.2)) as worker:
        wait_until(started.is_set, "the first pass")
        wait_until(lambda: not worker.healthy(), "the hung pass makes the unit unhealthy", deadline_s=5)
        release.set()


def test_a_stop_ends_every_unit_between_passes_and_closes_each_once():
    closed: list[str] = []
    units = [
        Unit(name, lambda _stop: False, SLOW_PACE_S, 60.0, close=lambda name=name: closed.append(name))
        for name in ("first", "second")
    ]
    with running(*units) as worker:
        wait_until(worker.healthy, "both units passed once")

    assert closed == ["first", "second"]
