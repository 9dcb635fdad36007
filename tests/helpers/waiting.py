"""Polling for a condition that another thread or process brings about (never a sleep to order events)."""

from __future__ import annotations

import time


def wait_until(condition, what: str, deadline_s: float = 20, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(interval_s)  # polling interval, not ordering
