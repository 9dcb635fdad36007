"""Log lines leave the process whole: one write() per JSON line (app/observability/logs.py)."""

from __future__ import annotations

import json
import sys

import structlog

from app.observability.logs import configure_logging


class RecordingStdout:
    """A stdout that keeps each write() call apart, as PYTHONUNBUFFERED makes them system calls."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_each_log_line_is_written_whole_with_its_newline_in_one_call(monkeypatch):
    stdout = RecordingStdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    configure_logging("INFO")

    structlog.get_logger("test").info("booked", user_id="u-1")
    structlog.get_logger("test").warning("retried", attempt=2)

    assert [json.loads(line)["event"] for line in stdout.writes] == ["booked", "retried"]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in stdout.writes)
