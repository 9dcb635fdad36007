"""PgBouncer in transaction pooling mode between the instances and PostgreSQL.

In transaction mode a client holds a server connection only for the length of a transaction. Ours
are one statement long (the booking functions do all their work in one round trip), so a few server
connections serve many clients. What the app must not rely on there (session state, startup options,
server-side prepared statements) is explained in docs/scaling.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg2

from cluster.database import USER, Postgres
from cluster.processes import Managed, free_port, wait_until

CONFIG = """\
[databases]
{database} = host={host} port={port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
admin_users = {user}
pool_mode = transaction
; server connections per database and user: what PostgreSQL can run at once (docs/scaling.md)
default_pool_size = {pool_size}
max_client_conn = {max_client_conn}
; a client waiting longer than the app's statement timeout for a server connection gets an error
query_wait_timeout = 10
; the leader proxy refuses logins while no leader is up (a failover): try again this soon, not in 15 s
server_login_retry = 0.5
server_connect_timeout = 3
log_connections = 0
log_disconnections = 0
"""


def config_text(
    server: Postgres, database: str, listen_port: int, auth_file: Path, pool_size: int, max_client_conn: int
) -> str:
    return CONFIG.format(
        database=database,
        host=server.host,
        port=server.port,
        listen_port=listen_port,
        auth_file=auth_file,
        user=USER,
        pool_size=pool_size,
        max_client_conn=max_client_conn,
    )


def start(
    program: str, server: Postgres, database: str, state_dir: Path, log_dir: Path, pool_size: int, max_client_conn: int
) -> tuple[Managed, int]:
    """Start PgBouncer on a free port; return it and the port, once a query passes through it."""
    port = free_port()
    auth_file = state_dir / "pgbouncer-users.txt"
    auth_file.write_text(f'"{USER}" ""\n')  # trust: the name must be listed, the password is not checked
    config = state_dir / "pgbouncer.ini"
    config.write_text(config_text(server, database, port, auth_file, pool_size, max_client_conn))
    bouncer = Managed("pgbouncer", [program, *_run_as(), str(config)], log_dir)
    bouncer.start()
    wait_until(lambda: _query_passes(port, database), 15, "a query through PgBouncer", bouncer)
    return bouncer, port


def _run_as() -> list[str]:
    """PgBouncer refuses to run as root: as root, it runs as nobody (it reaches PostgreSQL over TCP)."""
    return ["-u", "nobody"] if os.geteuid() == 0 else []


def console(port: int, command: str) -> list[dict]:
    """A command on PgBouncer's admin console (the `pgbouncer` pseudo-database); its rows as dicts."""
    conn = psycopg2.connect(host="127.0.0.1", port=port, user=USER, dbname="pgbouncer", connect_timeout=3)
    conn.autocommit = True  # the console knows no transactions
    try:
        with conn.cursor() as cur:
            cur.execute(command)
            if cur.description is None:  # PAUSE, RESUME: no rows
                return []
            names = [column.name for column in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def _query_passes(port: int, database: str) -> bool:
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user=USER, dbname=database, connect_timeout=1)
    except psycopg2.OperationalError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return True
    finally:
        conn.close()
