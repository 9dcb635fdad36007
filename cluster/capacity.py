"""`python -m cluster.capacity`: requests per second through the cluster, one hot event vs many (docs/scaling.md).

Starts a cluster of its own with rate limiting off, opens events with a million tickets each, and runs
wrk (Debian's) for each scenario: bookings on one hot event, bookings spread over many events, and
status reads; through the balancer to all instances, and straight to one instance. Every booking is
by a new user, so each one takes the event's lock and writes; some carry an Idempotency-Key, which
adds the key's row to the booking's transaction. One line per scenario.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.config import INSTANCE_DIR
from cluster import ClusterError, say
from cluster.client import Api
from cluster.orchestrator import Cluster, Settings
from cluster.packages import ensure_programs
from cluster.processes import free_port

SPREAD_EVENTS = 200
TICKETS = 1_000_000

# One Lua state per wrk thread: `setup` numbers the threads, and with the run's number in it too no
# user id repeats, so that every booking is a new one.
WRK_SCRIPT = """
local events = {{{events}}}
local thread_number, counter = 0, 0
function setup(thread)
  thread_number = thread_number + 1
  thread:set("number", thread_number)
end
function init(args)
  thread_number = number
end
request = function()
  counter = counter + 1
  local event = events[math.random(#events)]
  if "{method}" == "GET" then
    return wrk.format("GET", "/api/status/" .. event)
  end
  local user = string.format("cap-{run}-%d-%d", thread_number, counter)
  local headers = {{["Content-Type"] = "application/json"}}
  if {keyed} then
    headers["Idempotency-Key"] = user
  end
  local body = string.format('{{"eventId":"%s","userId":"%s"}}', event, user)
  return wrk.format("POST", "/api/book", headers, body)
end
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str  # POST: a booking; GET: a status read
    events: int  # how many events the requests are spread over
    through_balancer: bool  # else straight to the first instance
    keyed: bool = False  # each booking with an Idempotency-Key of its own


SCENARIOS = [
    Scenario("book, one hot event, balancer -> 3 instances", "POST", 1, True),
    Scenario(f"book, {SPREAD_EVENTS} events, balancer -> 3 instances", "POST", SPREAD_EVENTS, True),
    Scenario(f"status, {SPREAD_EVENTS} events, balancer -> 3 instances", "GET", SPREAD_EVENTS, True),
    Scenario("book + Idempotency-Key, one hot event, balancer", "POST", 1, True, keyed=True),
    Scenario(f"book + Idempotency-Key, {SPREAD_EVENTS} events, balancer", "POST", SPREAD_EVENTS, True, keyed=True),
    Scenario("book, one hot event, one instance", "POST", 1, False),
    Scenario(f"book, {SPREAD_EVENTS} events, one instance", "POST", SPREAD_EVENTS, False),
    Scenario(f"status, {SPREAD_EVENTS} events, one instance", "GET", SPREAD_EVENTS, False),
]


@dataclass(frozen=True)
class Result:
    requests_per_s: float
    latency_p50: str
    latency_p99: str
    failed: int


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        wrk = ensure_programs({"wrk": "wrk"})["wrk"]
        settings = Settings(
            port=free_port(),
            database=f"booking_cluster_capacity_{uuid.uuid4().hex[:8]}",
            scratch_database=True,
            rate_limit="",
            state_dir=INSTANCE_DIR / "cluster-capacity",
            auth_mode="open",
        )  # wrk's requests carry no token: the capacity of v1's requests
        with Cluster(settings) as cluster:
            admin = Api(cluster.base_url, admin_token=cluster.admin_token)
            events = [admin.initialize(TICKETS) for _ in range(SPREAD_EVENTS)]
            for run_number, scenario in enumerate(SCENARIOS):
                url = cluster.base_url if scenario.through_balancer else f"http://127.0.0.1:{cluster.instance_ports[0]}"
                result = run(wrk, url, scenario, run_number, events[: scenario.events], args, settings.state_dir)
                print(
                    f"{scenario.name:<52} {result.requests_per_s:>7.0f} req/s  p50 {result.latency_p50:>8}"
                    f"  p99 {result.latency_p99:>8}  failed {result.failed}",
                    flush=True,
                )
    except ClusterError as exc:
        say(f"error: {exc}")
        return 1
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cluster.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent wrk connections (default 32)")
    return parser.parse_args(argv)


def run(wrk: str, url: str, scenario: Scenario, run_number: int, events: list[str], args, state_dir: Path) -> Result:
    """One wrk run of `scenario` against `url`."""
    script = state_dir / "wrk.lua"
    quoted = ", ".join(f'"{event}"' for event in events)
    keyed = "true" if scenario.keyed else "false"
    script.write_text(WRK_SCRIPT.format(events=quoted, method=scenario.method, run=run_number, keyed=keyed))
    argv = [wrk, "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "-s", str(script), url]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return parse(output)


def parse(output: str) -> Result:
    """The figures of wrk's report."""
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return Result(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        latency_p50=re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1),
        latency_p99=re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1),
        failed=(int(failed.group(1)) if failed else 0) + (sum(map(int, errors.groups())) if errors else 0),
    )


if __name__ == "__main__":
    sys.exit(main())
