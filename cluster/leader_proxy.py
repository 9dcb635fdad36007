"""HAProxy in TCP mode in front of the Patroni members: one address that always reaches the leader.

Each member is checked on its Patroni REST API: `GET /primary` answers 200 on the leader only, 503 on a
replica or a member whose PostgreSQL is down. So connections go to the leader alone; when it changes,
the old one is marked down after two failed checks (or at once, when its port refuses a connection),
and `on-marked-down shutdown-sessions` closes every connection still open to it: PgBouncer, in front,
sees them close and opens new ones, which reach the new leader. Another HAProxy than the service's
(cluster/balancer.py): it is up before the database is migrated, and it is the database's own.
"""

from __future__ import annotations

from pathlib import Path

from cluster import balancer
from cluster.patroni import Member
from cluster.processes import Managed, free_port, wait_until

CONFIG = """\
global
    maxconn 2048
    stats socket {stats_socket} mode 600 level admin
    log stderr format raw local0 info

defaults
    mode tcp
    log global
    option dontlognull
    timeout connect 2s
    # PgBouncer's server connections idle for minutes between busy spells: only the check decides
    timeout client 1h
    timeout server 1h
    timeout check 1s

listen leader
    bind 127.0.0.1:{port}
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down
{servers}
"""


def config_text(port: int, members: list[Member], stats_socket: Path) -> str:
    servers = "\n".join(f"    server {m.name} 127.0.0.1:{m.pg_port} check port {m.rest_port}" for m in members)
    return CONFIG.format(port=port, servers=servers, stats_socket=stats_socket)


def start(program: str, members: list[Member], state_dir: Path, log_dir: Path) -> tuple[Managed, int]:
    """Start it on a free port; return it and the port, once it sends connections to a leader."""
    port, stats_socket = free_port(), state_dir / "haproxy-postgres.sock"
    config = state_dir / "haproxy-postgres.cfg"
    config.write_text(config_text(port, members, stats_socket))
    proxy = Managed("haproxy-postgres", [program, "-db", "-f", str(config)], log_dir)
    proxy.start()
    wait_until(lambda: _one_up(server_states(stats_socket)), 15, "HAProxy to find the leader", proxy)
    return proxy, port


def _one_up(states: dict[str, str]) -> bool:
    """One member UP, the others DOWN: HAProxy starts with them all UP, until their checks say otherwise."""
    return sorted(states.values()) == ["DOWN"] * (len(states) - 1) + ["UP"]


def server_states(stats_socket: Path) -> dict[str, str]:
    """Each member's state in this HAProxy: UP (the leader), DOWN, or a transition."""
    try:
        return balancer.server_states(stats_socket, "leader")
    except OSError:  # not listening yet
        return {}
