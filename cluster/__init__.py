"""Several instances of the service behind a load balancer: `python -m cluster` (what `make cluster` runs).

HAProxy spreads requests over three gunicorn instances and sets X-Forwarded-For; PgBouncer pools their
connections in transaction mode to PostgreSQL's leader, reached through a second HAProxy that asks each
member of a three-member Patroni cluster (etcd its store) whether it leads; Redis holds the rate limiter's
counters, so that all instances share one budget per client. Every process runs under `instance/cluster/`, and stopping the
orchestrator stops them all. See docs/scaling.md.
"""

from __future__ import annotations

import sys


class ClusterError(Exception):
    """A problem the user can fix (a missing package, a busy port), reported as one line."""


def say(message: str) -> None:
    """Progress for the person at the terminal, on stderr like the service's own start-up messages."""
    print(f"cluster: {message}", file=sys.stderr, flush=True)
