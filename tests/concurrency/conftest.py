"""The races' engine: one pooled connection per thread."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from tests.helpers import BARRIER_TIMEOUT_S, THREADS


@pytest.fixture(scope="module")
def race_engine(database_url):
    """A connection per thread, opened before the first race so that every thread contends at once."""
    engine = create_engine(database_url, pool_size=THREADS, max_overflow=0, pool_timeout=BARRIER_TIMEOUT_S)
    warm = [engine.connect() for _ in range(THREADS)]
    for conn in warm:
        conn.close()
    yield engine
    engine.dispose()
