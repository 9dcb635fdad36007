"""One loop shape for every background unit: a pass, then a wait of the unit's pace (none while a pass
leaves a backlog, or once the unit is woken), until the process stops; each unit in a thread of its own,
so that one unit's slow pass (a sweep waiting for a hot event's lock) never holds up another's.

A pass that fails is logged and the unit goes on at its pace: a database away, a pool timeout, a bug.
The process is healthy while each unit's thread runs and its last pass that completed is recent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from app.database.engine import DATABASE_ERRORS

log = structlog.get_logger("app.workers")


@dataclass(eq=False)
class Unit:
    """A piece of background work: its name (the thread's and the log's), one pass (`run_once(stop)`,
    true when it left a backlog: the next pass follows at once), and its pace (seconds between passes).

    `wake`, once set, starts the next pass before its time (the dispatcher's, when a send slot frees).
    `healthy_within_s`: the longest a completed pass may be ago for the unit to count as healthy (its
    slowest pass, and some). `close` runs once the loop has ended (the dispatcher's sends in flight finish).
    """

    name: str
    run_once: Callable[[threading.Event], bool]
    pace_s: float
    healthy_within_s: float
    close: Callable[[], None] = lambda: None
    wake: threading.Event = field(default_factory=threading.Event)
    last_pass_at: float | None = None  # monotonic time of the last pass that completed


class Worker:
    """Runs its units, a thread each, until `stop`; says whether they are healthy."""

    def __init__(self, units: list[Unit]) -> None:
        self.units = units
        self._threads: list[threading.Thread] = []

    def run(self, stop: threading.Event) -> None:
        """Loop every unit until `stop` is set; then let each finish its pass, and close it."""
        log.info("worker_started", units=[unit.name for unit in self.units])
        self._threads = [
            threading.Thread(target=_loop, args=(unit, stop), name=unit.name, daemon=True) for unit in self.units
        ]
        for thread in self._threads:
            thread.start()
        stop.wait()
        for unit in self.units:
            unit.wake.set()  # out of its wait: it sees `stop` at once
        for thread, unit in zip(self._threads, self.units, strict=True):
            thread.join()
            unit.close()
        log.info("worker_stopped")

    def healthy(self) -> bool:
        """Whether every unit's thread runs and its last pass completed within its `healthy_within_s`."""
        now = time.monotonic()
        return len(self._threads) == len(self.units) and all(
            thread.is_alive() and unit.last_pass_at is not None and now - unit.last_pass_at < unit.healthy_within_s
            for thread, unit in zip(self._threads, self.units, strict=True)
        )


def _loop(unit: Unit, stop: threading.Event) -> None:
    while not stop.is_set():
        if not _pass(unit, stop):
            unit.wake.wait(unit.pace_s)
        unit.wake.clear()


def _pass(unit: Unit, stop: threading.Event) -> bool:
    """One pass of `unit`; whether it left a backlog. A failure is logged: the unit must outlive it."""
    try:
        backlog = unit.run_once(stop)
    except DATABASE_ERRORS as error:
        log.warning("worker_database_error", unit=unit.name, error=str(error).splitlines()[0])
        return False
    except Exception:  # noqa: BLE001 (a pool timeout, a bug: the unit must outlive it, and say so)
        log.exception("worker_pass_failed", unit=unit.name)
        return False
    unit.last_pass_at = time.monotonic()
    return backlog
