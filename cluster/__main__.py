"""`python -m cluster`: start the cluster, say where everything is, and run until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from cluster import ClusterError, say
from cluster.orchestrator import Cluster, Settings


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    # Both explicitly: a shell starting us in the background leaves SIGINT ignored, and Python then
    # installs no handler of its own.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with Cluster(Settings(port=args.port, instances=args.instances)) as cluster:
            _describe(cluster)
            _watch(cluster)
    except ClusterError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("stopped")
        return 0
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("CLUSTER_PORT") or 8080),
        help="the load balancer's port (default: $CLUSTER_PORT or 8080)",
    )
    parser.add_argument("--instances", type=int, default=3)
    return parser.parse_args(argv)


def _describe(cluster: Cluster) -> None:
    settings = cluster.settings
    ports = ", ".join(
        f"{instance.name} :{port}" for instance, port in zip(cluster.instances, cluster.instance_ports, strict=True)
    )
    say(f"instances: {ports} ({settings.workers} workers x {settings.concurrency} requests at once each)")
    say(
        f"PgBouncer: 127.0.0.1:{cluster.bouncer_port}, transaction pooling, "
        f"{settings.bouncer_pool_size} server connections; limiter: {cluster.redis_uri}"
    )
    say(
        f"PostgreSQL: the Patroni leader at {cluster.postgres.host}:{cluster.postgres.port} (HAProxy, GET /primary); "
        f"members and lag: {Path(sys.executable).with_name('patronictl')} -c {cluster.patroni.members[0].config_path} list"
    )
    say(f"webhook dispatchers: {', '.join(d.name for d in cluster.dispatchers)} (sharing the outbox)")
    say(f"admin token: {cluster.admin_token} (in {settings.state_dir / 'admin_token'})")
    if cluster.jwks is not None:
        say(f"AUTH_MODE=jwt, keys from {cluster.jwks.url}; a user's token: make token USER=alice")
    say(f"logs in {cluster.log_dir}; HAProxy stats: echo 'show stat' | socat - {cluster.stats_socket}")
    say(f"serving on {cluster.base_url} (HAProxy); Ctrl-C stops everything")


def _watch(cluster: Cluster) -> None:
    """Wait for Ctrl-C, saying so when an instance dies (HAProxy takes it out of rotation)."""
    reported: set[str] = set()
    while True:
        for instance in cluster.instances:
            if not instance.alive() and instance.name not in reported:
                reported.add(instance.name)
                say(f"{instance.name} exited; the others carry on. Its log:\n{instance.log_tail()}")
        time.sleep(1)


def _raise_keyboard_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
