"""One cluster for the whole run (`make cluster-test`), spoken to only through its load balancer.

The tests are black-box: HTTP through HAProxy for everything they do, the tables read directly (not
through the bouncer) only to check what the clients were told against what was stored.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from app.config import INSTANCE_DIR, normalise_database_url
from cluster.client import Addresses, Api
from cluster.orchestrator import Cluster, Settings
from cluster.processes import free_port

# Per client address. The load tests give every simulated user an address of its own, so only the
# rate-limit test, which spends one address's whole budget, comes near it.
RATE_LIMIT_PER_MINUTE = 120
BARRIER_TIMEOUT_S = 60

_report: list[str] = []


def report(line: str) -> None:
    """A line for the summary at the end of the run: what was measured."""
    _report.append(line)


def pytest_terminal_summary(terminalreporter) -> None:
    if _report:
        terminalreporter.section("cluster measurements")
        for line in _report:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def cluster():
    # A state dir and database of its own: a `make cluster` may be running beside it.
    settings = Settings(
        port=free_port(),
        database=f"booking_cluster_test_{uuid.uuid4().hex[:8]}",
        scratch_database=True,
        rate_limit=f"{RATE_LIMIT_PER_MINUTE} per minute",
        webhook_allow_private=True,  # the failover tests' receiver listens on loopback
        state_dir=INSTANCE_DIR / "cluster-test",
    )
    with Cluster(settings) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def db(cluster):
    """The cluster's database on its current leader, read directly (not through the bouncer).

    Pinged before each use: after a failover the pool's connections lead to the old leader, closed.
    """
    engine = create_engine(normalise_database_url(cluster.database_url()), pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def addresses() -> Addresses:
    return Addresses()


@pytest.fixture(scope="session")
def admin(cluster, addresses) -> Api:
    return Api(cluster.base_url, addresses.next(), admin_token=cluster.admin_token)


@pytest.fixture(scope="session")
def user_api(cluster, addresses) -> Callable[[], Api]:
    """A client on an address of its own, as each real user would be."""
    return lambda: Api(cluster.base_url, addresses.next(), tokens=user_tokens(cluster))


def user_tokens(cluster: Cluster):
    """Each user's own token when the cluster runs in jwt mode (its default), else None."""
    return cluster.jwks.token if cluster.jwks is not None else None


@pytest.fixture(scope="session")
def idempotency_supported(cluster, admin, addresses) -> bool:
    """Whether the service replays a repeated Idempotency-Key (issue 4), found out over HTTP."""
    event_id = admin.initialize(1)
    api, key = (
        Api(cluster.base_url, addresses.next(), tokens=user_tokens(cluster)),
        {"Idempotency-Key": uuid.uuid4().hex},
    )
    api.book(event_id, "probe", key)
    return api.book(event_id, "probe", key).headers.get("idempotent-replayed") == "true"


def race(jobs: list[Callable], threads: int = 64) -> list:
    """Run the no-argument `jobs` over `threads` threads released together; their results in job order."""
    lanes = [list(enumerate(jobs))[start::threads] for start in range(min(threads, len(jobs)))]
    barrier = threading.Barrier(len(lanes), timeout=BARRIER_TIMEOUT_S)

    def run(lane):
        barrier.wait()
        return [(index, job()) for index, job in lane]

    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        done = [pair for lane_results in pool.map(run, lanes) for pair in lane_results]
    return [result for _, result in sorted(done, key=lambda pair: pair[0])]


INVARIANTS = text("""
SELECT e.total_tickets, e.available_tickets, e.waiting_count,
       count(b.*) FILTER (WHERE b.status = 'confirmed') AS confirmed,
       count(b.*) FILTER (WHERE b.status = 'waiting') AS waiting,
       coalesce(max(b.seq) FILTER (WHERE b.status = 'confirmed'), 0) AS last_confirmed_seq,
       coalesce(min(b.seq) FILTER (WHERE b.status = 'waiting'), 0) AS first_waiting_seq,
       count(DISTINCT b.user_id) FILTER (WHERE b.status <> 'cancelled') AS active_users
  FROM events e LEFT JOIN bookings b ON b.event_id = e.id
 WHERE e.id = :event_id
 GROUP BY e.id
""")


def assert_invariants(db, event_id: str) -> None:
    """The contract's invariants for one event, read from the tables."""
    with db.connect() as conn:
        row = conn.execute(INVARIANTS, {"event_id": event_id}).one()
    assert row.available_tickets + row.confirmed == row.total_tickets, "tickets neither lost nor oversold"
    assert row.available_tickets >= 0
    assert row.waiting == 0 or row.available_tickets == 0, "nobody waits while tickets are left"
    assert row.waiting_count == row.waiting
    assert row.active_users == row.confirmed + row.waiting, "one active booking per user"
    assert row.waiting == 0 or row.last_confirmed_seq < row.first_waiting_seq, "first come, first served"
