"""`python -m tests.chaos` (`make chaos`): the long chaos run, on a PostgreSQL and a server of its own."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

from app.operations.embedded_pg import EmbeddedPostgres
from tests.chaos.harness import LONG, Harness
from tests.helpers.database import migrate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=LONG.duration_s, help="seconds of load (default %(default)s)")
    parser.add_argument("--clients", type=int, default=LONG.clients, help="client threads (default %(default)s)")
    parser.add_argument("--seed", type=int, default=LONG.seed)
    args = parser.parse_args(argv)
    settings = dataclasses.replace(LONG, duration_s=args.duration, clients=args.clients, seed=args.seed)
    # mkdtemp, not a path under /tmp/pytest-of-*: as root, PostgreSQL runs as a user that must enter it.
    workdir = Path(tempfile.mkdtemp(prefix="booking-chaos-"))
    server = EmbeddedPostgres(workdir / "pgdata")
    try:
        server.start()
        url = server.ensure_database("booking")
        migrate(url, "head")
        verdict = Harness(settings, server, url, workdir).execute()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    for surprise in verdict.run.surprises:
        print(surprise)
    notifications = verdict.notifications
    for problem in notifications.undelivered + notifications.out_of_order + notifications.invented:
        print(f"webhook: {problem}")
    if not verdict.check_passed:
        print(verdict.check_output)
    print(verdict.summary())
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
