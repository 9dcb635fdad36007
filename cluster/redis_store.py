"""The rate limiter's Redis: the machine's at 127.0.0.1:6379 when it answers, else one of our own."""

from __future__ import annotations

import socket
from pathlib import Path

from cluster import ClusterError, say
from cluster.packages import ensure_programs
from cluster.processes import Managed, free_port, wait_until

MACHINE_HOST, MACHINE_PORT = "127.0.0.1", 6379


def answers(host: str, port: int) -> bool:
    """Whether a Redis server at host:port replies to PING."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def machine_or_own(state_dir: Path, log_dir: Path) -> tuple[str, Managed | None]:
    """The limiter's storage URI, and the redis-server we started for it (None: the machine's)."""
    if answers(MACHINE_HOST, MACHINE_PORT):
        say(f"Redis: the machine's, at {MACHINE_HOST}:{MACHINE_PORT}")
        return f"redis://{MACHINE_HOST}:{MACHINE_PORT}/0", None
    try:
        program = ensure_programs({"redis-server": "redis-server"})["redis-server"]
    except ClusterError as exc:
        raise ClusterError(f"no Redis at {MACHINE_HOST}:{MACHINE_PORT} and none to start: {exc}") from exc
    port = free_port()
    server = Managed(
        "redis",
        [
            program,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(state_dir),
        ],
        log_dir,
    )
    server.start()
    wait_until(lambda: answers("127.0.0.1", port), 10, "Redis to answer", server)
    say(f"Redis: our own, at 127.0.0.1:{port} (none answered at {MACHINE_HOST}:{MACHINE_PORT})")
    return f"redis://127.0.0.1:{port}/0", server
