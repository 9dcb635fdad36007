"""The whole cluster, started in order and stopped in reverse: the handle `make cluster` and its tests use.

Start: etcd, the three Patroni members of PostgreSQL and the HAProxy that reaches their leader (the
schema migrated through it, not through the bouncer), Redis, PgBouncer (whose server is that HAProxy),
the instances (each checked ready), two webhook dispatchers, and last the service's HAProxy, so that the
balancer's port answers only once all is in place.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from app.config import INSTANCE_DIR, PROJECT_ROOT, Config, resolve_admin_token, resolve_webhook_secret_keys
from app.observability.metrics import MULTIPROC_DIR_VARIABLE
from cluster import ClusterError, balancer, bouncer, database, etcd_store, leader_proxy, redis_store
from cluster.jwks import JwksServer
from cluster.packages import ensure_programs
from cluster.patroni import Member, PatroniCluster
from cluster.processes import Managed, free_port, http_ok, stop_together, wait_until

PROGRAM_PACKAGES = {"haproxy": "haproxy", "pgbouncer": "pgbouncer", "etcd": "etcd-server"}
INSTANCE_START_TIMEOUT_S = 30
SWITCHOVER_TIMEOUT_S = 30
DISPATCHERS = 2  # they share the outbox through FOR UPDATE SKIP LOCKED (docs/webhooks.md)


@dataclass(frozen=True)
class Settings:
    """How big the cluster is and where it keeps its state."""

    port: int = 8080
    instances: int = 3
    database: str = "booking_cluster"
    scratch_database: bool = False  # PostgreSQL and etcd made anew at start, removed at stop (the cluster tests)
    workers: int = 2  # gunicorn processes per instance
    concurrency: int = 4  # writes a worker runs at once (WRITE_CONCURRENCY); HAProxy's maxconn is workers x this
    bouncer_pool_size: int = 8  # PgBouncer's server connections to PostgreSQL
    rate_limit: str | None = None  # None: the app's default
    webhook_allow_private: bool = False  # the cluster tests' receiver listens on loopback
    auth_mode: str = "jwt"  # jwt: the instances trust the cluster's JWKS server (cluster/jwks.py)
    state_dir: Path = field(default=INSTANCE_DIR / "cluster")

    @property
    def client_connections(self) -> int:
        """The most connections the instances open to PgBouncer (each worker's pool)."""
        return self.instances * self.workers * self.pool_size

    @property
    def pool_size(self) -> int:
        """Per worker: HAProxy sends an instance at most workers x concurrency requests, reads and
        writes alike, and one worker may get them all; each holds one connection at most."""
        return self.workers * self.concurrency


class Cluster:
    """HAProxy, the instances, PgBouncer, Redis and the Patroni cluster; a context manager that stops them all."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.log_dir = self.settings.state_dir / "logs"
        self.support: list[Managed] = []  # Redis (if ours) and PgBouncer, in start order
        self.instances: list[Managed] = []
        self.dispatchers: list[Managed] = []
        self.balancer: Managed | None = None
        self.instance_ports: list[int] = []
        self.etcd: etcd_store.Etcd | None = None
        self.patroni: PatroniCluster | None = None
        self.leader_proxy: Managed | None = None
        self.postgres: database.Postgres | None = None  # the leader, through the leader proxy
        self.redis_uri = ""
        self.bouncer_port = 0
        self.admin_token = ""
        self.webhook_secret_key = ""
        self.jwks: JwksServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def stats_socket(self) -> Path:
        return self.settings.state_dir / "haproxy.sock"

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def start(self) -> None:
        _require_free(self.settings.port)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        programs = ensure_programs(PROGRAM_PACKAGES)
        self.admin_token = resolve_admin_token(self.settings.state_dir)
        self.webhook_secret_key = ",".join(resolve_webhook_secret_keys({}, "", self.settings.state_dir))
        self._start_database(programs)
        self.redis_uri, own_redis = redis_store.machine_or_own(self.settings.state_dir, self.log_dir)
        self.support += [own_redis] if own_redis else []
        self._start_bouncer(programs["pgbouncer"])
        if self.settings.auth_mode == "jwt":
            self.jwks = JwksServer().start()
        for index in range(self.settings.instances):
            self._start_instance(index, free_port())
        for index in range(DISPATCHERS):
            self._start_dispatcher(index)
        per_instance = self.settings.workers * self.settings.concurrency
        self.balancer = balancer.start(
            programs["haproxy"],
            self.settings.port,
            self.instance_ports,
            per_instance,
            self.settings.state_dir,
            self.log_dir,
        )

    def stop(self) -> None:
        """Stop the balancer, then the instances (together), then what they use; drop a scratch database."""
        stop_together([self.balancer] if self.balancer else [])
        stop_together(self.instances + self.dispatchers)
        if self.jwks is not None:
            self.jwks.stop()
            self.jwks = None
        for process in reversed(self.support):
            process.stop()
        self._stop_database()

    def kill_instance(self, index: int) -> None:
        """SIGKILL instance `index` with all its workers, as if its machine had died."""
        self.instances[index].kill()

    def restart_instance(self, index: int) -> None:
        """Start instance `index` again on its port; return once the balancer sends it requests again."""
        self._start_instance(index, self.instance_ports[index])
        wait_until(lambda: self.balancer_states()[f"app{index + 1}"] == "UP", 15, "HAProxy to see it up again")

    def switchover(self, candidate: Member) -> None:
        """A planned change of leader that cuts no transaction: PgBouncer pauses (the transactions in flight
        finish, new ones wait), `patronictl switchover` hands over, and PgBouncer resumes once the leader
        proxy reaches the candidate; the clients saw a pause, not an error."""
        bouncer.console(self.bouncer_port, f"PAUSE {self.settings.database}")
        try:
            self.patroni.switchover(candidate)
            wait_until(
                lambda: self.leader_proxy_states().get(candidate.name) == "UP",
                SWITCHOVER_TIMEOUT_S,
                "the leader proxy to reach the new leader",
            )
        finally:
            bouncer.console(self.bouncer_port, f"RESUME {self.settings.database}")

    def balancer_states(self) -> dict[str, str]:
        """Each instance's state in HAProxy: UP, DOWN, or a transition such as 'UP 1/2'."""
        return balancer.server_states(self.stats_socket)

    def database_url(self) -> str:
        """The database on the current leader, bypassing the bouncer (for checks that read the tables)."""
        return self.postgres.url(self.settings.database)

    def leader_proxy_states(self) -> dict[str, str]:
        """Each Patroni member's state in the leader proxy: UP for the leader alone, else DOWN."""
        return leader_proxy.server_states(self.settings.state_dir / "haproxy-postgres.sock")

    def _start_database(self, programs: dict[str, str]) -> None:
        """etcd, the Patroni members, the leader proxy; then the service's database on the leader, migrated."""
        if self.settings.scratch_database:
            self._remove_database_files()
        self.etcd = etcd_store.start(programs["etcd"], self.settings.state_dir / "etcd", self.log_dir)
        self.patroni = PatroniCluster(self.settings.state_dir / "patroni", self.etcd.endpoint, self.log_dir)
        self.patroni.start()
        self.leader_proxy, port = leader_proxy.start(
            programs["haproxy"], self.patroni.members, self.settings.state_dir, self.log_dir
        )
        self.postgres = database.Postgres("127.0.0.1", port)
        # The app's default timeouts, applied by the server instead (the app sends none through the bouncer).
        timeouts = {"statement_timeout": Config.db_statement_timeout_ms, "lock_timeout": Config.db_lock_timeout_ms}
        database.prepare_database(self.postgres, self.settings.database, self.settings.scratch_database, timeouts)
        self._migrate()

    def _stop_database(self) -> None:
        """The leader proxy, the Patroni members (each stops its PostgreSQL), then etcd; a scratch cluster's files go."""
        if self.leader_proxy is not None:
            self.leader_proxy.stop()
        if self.patroni is not None:
            self.patroni.stop()
        if self.etcd is not None:
            self.etcd.process.stop()
        self.leader_proxy = self.patroni = self.etcd = self.postgres = None
        if self.settings.scratch_database:
            self._remove_database_files()

    def _remove_database_files(self) -> None:
        for folder in ("patroni", "etcd"):
            shutil.rmtree(self.settings.state_dir / folder, ignore_errors=True)

    def _migrate(self) -> None:
        """`make migrate`'s command, run directly against PostgreSQL."""
        result = self._maintenance("migrate")
        if result.returncode != 0:
            raise ClusterError(f"migrations failed:\n{result.stderr.strip()}")

    def check(self) -> subprocess.CompletedProcess:
        """`make check` (flask check: every event's invariants and ledger) against the current leader."""
        return self._maintenance("flask", "check")

    def _maintenance(self, *command: str) -> subprocess.CompletedProcess:
        """`python -m app.operations.serve <command>` on the database directly, not through the bouncer."""
        env = {**os.environ, "DATABASE_URL": self.database_url(), "ADMIN_TOKEN": self.admin_token}
        return subprocess.run(
            [sys.executable, "-m", "app.operations.serve", *command],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )

    def _start_bouncer(self, program: str) -> None:
        settings = self.settings
        process, self.bouncer_port = bouncer.start(
            program,
            self.postgres,
            settings.database,
            settings.state_dir,
            self.log_dir,
            settings.bouncer_pool_size,
            max_client_conn=4 * settings.client_connections,
        )
        self.support.append(process)

    def _start_instance(self, index: int, port: int) -> None:
        argv = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "wsgi:app"]
        env = {**self._instance_env(), MULTIPROC_DIR_VARIABLE: str(self._metrics_dir(index))}
        instance = Managed(f"app{index + 1}", argv, self.log_dir, env=env, cwd=PROJECT_ROOT)
        instance.start()
        if index < len(self.instances):
            self.instances[index] = instance
        else:
            self.instances.append(instance)
            self.instance_ports.append(port)
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{port}/readyz"),
            INSTANCE_START_TIMEOUT_S,
            f"{instance.name} to be ready",
            instance,
        )

    def _start_dispatcher(self, index: int) -> None:
        """A webhook dispatcher, through PgBouncer like the instances (it keeps no session state)."""
        env = {**self._instance_env(), "DB_POOL_SIZE": ""}
        # Not even empty: prometheus-client turns multiprocess on when the variable merely exists, and
        # would write its files into the working directory.
        env.pop(MULTIPROC_DIR_VARIABLE, None)
        dispatcher = Managed(
            f"dispatcher{index + 1}",
            [sys.executable, "-m", "app.workers"],
            self.log_dir,
            env=env,
            cwd=PROJECT_ROOT,
        )
        dispatcher.start()
        self.dispatchers.append(dispatcher)

    def _instance_env(self) -> dict[str, str]:
        settings = self.settings
        env = {
            **os.environ,
            "DATABASE_URL": f"postgresql://{database.USER}@127.0.0.1:{self.bouncer_port}/{settings.database}",
            "DB_STATEMENT_TIMEOUT_MS": "",  # set on the server: PgBouncer refuses per-connection options
            "DB_LOCK_TIMEOUT_MS": "",
            "DB_POOL_SIZE": str(settings.pool_size),
            "WEB_CONCURRENCY": str(settings.workers),
            "WRITE_CONCURRENCY": str(settings.concurrency),
            "ADMIN_TOKEN": self.admin_token,
            "WEBHOOK_SECRET_KEY": self.webhook_secret_key,  # one key for every instance and dispatcher
            "RATE_LIMIT_STORAGE_URI": self.redis_uri,
            "RATE_LIMIT_KEY_PREFIX": settings.database,  # apart from other deployments on the same Redis
            "TRUSTED_PROXIES": "1",  # HAProxy is the one hop in front of the instances
        }
        if settings.webhook_allow_private:
            env["WEBHOOK_ALLOW_PRIVATE"] = "true"
        if settings.rate_limit is not None:
            env["RATE_LIMIT"] = settings.rate_limit
        env.update(self.jwks.instance_env() if self.jwks else {"AUTH_MODE": "open"})
        return env

    def _metrics_dir(self, index: int) -> Path:
        """Instance `index`'s folder for its workers' metrics (app/web/metrics.py), emptied of a previous run's."""
        path = self.settings.state_dir / "prometheus" / f"app{index + 1}"
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path


def _require_free(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as HAProxy does: TIME_WAIT is no obstacle
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ClusterError(f"port {port} is taken ({exc.strerror}); choose another with CLUSTER_PORT") from exc
