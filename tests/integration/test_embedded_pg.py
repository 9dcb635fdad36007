"""The embedded PostgreSQL: first start, adoption, databases, and stopping."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from sqlalchemy import create_engine, text

from app.operations.embedded_pg import EmbeddedPostgres


@pytest.fixture
def pg(scratch):
    server = EmbeddedPostgres(scratch / "missing-parent" / "pgdata")
    yield server
    server.stop()


def test_start_adopt_create_database_stop(pg):
    pg.stop()  # not running yet: nothing to do
    pg.start()
    assert not pg.adopted
    pg.start()
    assert pg.adopted
    url = pg.ensure_database("booking")
    assert pg.ensure_database("booking") == url == pg.url("booking")
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar() == "booking"
    engine.dispose()
    pg.stop()
    with pytest.raises(RuntimeError, match="not running"):
        pg.url()
    pg.start()  # a stop/start cycle in one process really restarts it
    assert not pg.adopted


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the pgserver user")
def test_root_takes_over_a_cluster_made_by_another_user(pg):
    pg.start()
    pg.stop()
    os.chown(pg.data_dir / "PG_VERSION", 65534, 65534)  # as if a normal user had run initdb
    pg.start()
    assert pg.url()


def test_a_killed_but_unreaped_postmaster_counts_as_stopped(tmp_path):
    """A SIGKILLed postmaster stays a zombie until its parent reaps it; pgserver alone would adopt it."""
    zombie = subprocess.Popen(["sleep", "60"])
    zombie.kill()
    time.sleep(0.2)  # not waited for, so it stays a zombie of this process
    data_dir = tmp_path / "pgdata"
    data_dir.mkdir()
    fields = [zombie.pid, data_dir, int(time.time()), 5432, data_dir, "", "0 0", "ready"]
    (data_dir / "postmaster.pid").write_text("".join(f"{field}\n" for field in fields))
    pg = EmbeddedPostgres(data_dir)
    try:
        started = time.monotonic()
        pg._await_dead_postmaster(timeout=0.3)
        assert time.monotonic() - started >= 0.3  # waited for the reaping that never came
        pg.stop()  # nothing alive to stop
        with pytest.raises(RuntimeError, match="not running"):
            pg.url()
    finally:
        zombie.wait()
