"""The pieces between the client and the database: PgBouncer's mode and the settings that cross it."""

from __future__ import annotations

import urllib.request

import psycopg2
import pytest

from cluster import bouncer
from cluster.database import USER


def bouncer_connection(cluster, database: str, **options):
    return psycopg2.connect(
        host="127.0.0.1", port=cluster.bouncer_port, user=USER, dbname=database, connect_timeout=3, **options
    )


def test_the_bouncer_pools_the_service_database_in_transaction_mode(cluster):
    pools = [
        row
        for row in bouncer.console(cluster.bouncer_port, "SHOW POOLS")
        if row["database"] == cluster.settings.database
    ]

    assert [row["pool_mode"] for row in pools] == ["transaction"]


def test_the_bouncer_refuses_per_connection_options_so_the_app_sends_none(cluster):
    with pytest.raises(psycopg2.OperationalError, match="unsupported startup parameter"):
        bouncer_connection(cluster, cluster.settings.database, options="-c statement_timeout=1000")


@pytest.mark.parametrize(("setting", "value"), [("statement_timeout", "10s"), ("lock_timeout", "5s")])
def test_the_apps_timeouts_reach_server_connections_as_database_defaults(cluster, setting, value):
    conn = bouncer_connection(cluster, cluster.settings.database)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SHOW {setting}")
            assert cur.fetchone() == (value,)
    finally:
        conn.close()


def test_each_instance_reports_the_requests_of_all_its_workers(cluster, user_api):
    for _ in range(12):  # round robin: four for each instance, answered by either of its workers
        assert user_api().call("GET", "/healthz").status == 200

    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.instance_ports[0]}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()

    healthz = [line for line in lines if line.startswith("http_requests_total{") and "healthz" in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in healthz) >= 4, healthz


def test_the_bouncers_server_connections_reach_the_patroni_leader_only(cluster):
    leader = cluster.patroni.leader()
    conn = bouncer_connection(cluster, cluster.settings.database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery(), inet_server_port()")
            assert cur.fetchone() == (False, leader.pg_port)
    finally:
        conn.close()
    assert cluster.leader_proxy_states() == {m.name: "UP" if m is leader else "DOWN" for m in cluster.patroni.members}


def test_a_commit_waits_for_one_synchronous_standby(cluster, db):
    with db.connect() as conn:
        states = conn.exec_driver_sql("SELECT sync_state, state FROM pg_stat_replication").all()

    assert sorted(states) == [("async", "streaming"), ("sync", "streaming")]
    assert cluster.patroni.sync_standby() is not None
