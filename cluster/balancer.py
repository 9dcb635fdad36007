"""HAProxy in front of the instances: health checks, retries on another instance, X-Forwarded-For.

An instance that refuses a connection is taken out of rotation at once, one that stops answering
/healthz after two failed checks (half a second apart); two good checks put it back. A request whose connection to an instance fails was
never received, so HAProxy sends it to another one. A request that an instance received and then
dropped (killed mid-request) is retried elsewhere only if repeating it is safe: a GET, or a POST
carrying an Idempotency-Key, whose repeat the service answers with the stored response.
"""

from __future__ import annotations

import csv
import io
import socket
from pathlib import Path

from cluster.processes import Managed, http_ok, wait_until

CONFIG = """\
global
    maxconn 4096
    stats socket {stats_socket} mode 600 level admin
    log stderr format raw local0 info

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 2s
    timeout client 30s
    # longer than the app's statement timeout (10 s): a slow answer is the app's to time out
    timeout server 30s
    timeout check 1s
    retries 3
    option redispatch 1

frontend api
    bind 127.0.0.1:{port}
    # appends the client's address; the app trusts exactly this one hop (TRUSTED_PROXIES=1)
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    default_backend instances

backend instances
    balance roundrobin
    # /healthz, not /readyz: every instance shares one database, so when it is away (a failover, or
    # PgBouncer paused for a switchover) all would fail /readyz at once and HAProxy would refuse every
    # request itself; in rotation, the instances wait for the database or answer 503 with Retry-After
    option httpchk GET /healthz
    http-check expect status 200
    # no more requests at once than an instance serves at once: the rest wait in HAProxy's queue, from
    # which they go to a live instance should this one die (none wait unseen in its accept backlog)
    # Out of rotation at the first refused connection (it would look idle and draw the queue), or
    # after two failed checks; back after two good ones.
    default-server check inter 500ms fall 2 rise 2 maxconn {per_instance} observe layer4 error-limit 1 on-error mark-down
    timeout queue 10s
    retry-on conn-failure empty-response junk-response
    http-request disable-l7-retry if METH_POST !{{ req.hdr(Idempotency-Key) -m found }}
    http-response set-header X-Served-By %[srv_name]
{servers}
"""


def config_text(port: int, instance_ports: list[int], per_instance: int, stats_socket: Path) -> str:
    servers = "\n".join(f"    server app{i + 1} 127.0.0.1:{p}" for i, p in enumerate(instance_ports))
    return CONFIG.format(port=port, servers=servers, per_instance=per_instance, stats_socket=stats_socket)


def start(
    program: str, port: int, instance_ports: list[int], per_instance: int, state_dir: Path, log_dir: Path
) -> Managed:
    """Start HAProxy on `port`, sending each instance at most `per_instance` requests at once."""
    stats_socket = state_dir / "haproxy.sock"
    config = state_dir / "haproxy.cfg"
    config.write_text(config_text(port, instance_ports, per_instance, stats_socket))
    balancer = Managed("haproxy", [program, "-db", "-f", str(config)], log_dir)
    balancer.start()
    wait_until(lambda: _all_up(stats_socket), 15, "HAProxy to see every instance up", balancer)
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 5, "the balancer to answer", balancer)
    return balancer


def server_states(stats_socket: Path, proxy: str = "instances") -> dict[str, str]:
    """Each server of `proxy` as HAProxy sees it: UP, DOWN, or a transition such as 'UP 1/2'."""
    rows = csv.DictReader(io.StringIO(_stats_command(stats_socket, "show stat").lstrip("# ")))
    return {
        row["svname"]: row["status"]
        for row in rows
        if row["pxname"] == proxy and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def _all_up(stats_socket: Path) -> bool:
    try:
        return set(server_states(stats_socket).values()) == {"UP"}
    except OSError:  # HAProxy has not opened its stats socket yet
        return False


def _stats_command(stats_socket: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(stats_socket))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()
