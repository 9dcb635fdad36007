"""Orchestrates `make bench`: floor, scenarios over HTTP and with pgbench, checks, report."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil

from bench import draw as opening
from bench import report
from bench.database import BenchDatabase, event_id, event_prefix, postgres_server
from bench.identity import BenchIdentity
from bench.load import CpuMeter, ensure_wrk, find_pgbench, find_psql, postmaster_pid, run_pgbench, start_wrk, wrk_result
from bench.server import SERVERS, Server
from bench.settings import RESULTS_DIR, Settings
from bench.webhooks import WebhookSide

PGBENCH_FORMS = ("multi", "function")
DRAW = "draw"  # the fair sale opening: the storm and the draw (bench/draw.py)
OPEN, JWT = "open", "jwt"  # AUTH_MODE of the server a scenario runs against
WARM_UP_SCRIPTS = {OPEN: "book.lua", JWT: "book_jwt.lua"}
# Churn cancels pre-booked users; each load thread or client gets a pool sized for this rate.
CHURN_CANCELS_PER_S_BUDGET = 3000
CHURN_WAITERS = 2000
# hot-hold's confirm stream: how long it waits before trying again a booking not made yet (409 no_hold).
CONFIRM_RETRY_MS = 5
# The queue scenario: a waiting list this long on the group's second event, seeded in SQL, and the
# bands of positions whose booking-status is polled (each uniformly), one reader per band.
QUEUE_WAITING = 1_000_000
QUEUE_EVENT = 2
QUEUE_BANDS = {
    "front": (1, QUEUE_WAITING // 3),
    "middle": (QUEUE_WAITING // 3 + 1, 2 * QUEUE_WAITING // 3),
    "back": (2 * QUEUE_WAITING // 3 + 1, QUEUE_WAITING),
}


# hot-types' ticket types (bench/wrk/common.lua names the same): their totals add up to more than the
# event's 1 000 000, as a shared cap allows.
HOT_TYPES = (("stalls", 600_000), ("circle", 600_000), ("box", 300_000))


@dataclass(frozen=True)
class Scenario:
    name: str
    events: int = 1
    tickets: int = 1_000_000
    wrk_script: str = "book.lua"
    pgbench_scripts: tuple[str, ...] = ("book",)  # bench/pgbench/<name>_<form>.sql
    churn: bool = False
    status: str | None = None  # the name of the status reads run beside it, if any
    auth: str = OPEN
    queue: bool = False  # a long waiting list on another event, its places polled beside the load
    webhook: bool = False  # a webhook for every event, to a receiver on loopback, and a dispatcher running
    hold_ttl_s: int | None = None  # checkout holds on the events (issue 25): bookings are held this long
    confirm: bool = False  # a second stream confirms each held booking shortly after (bench/wrk/confirm.lua)
    ticket_types: tuple[tuple[str, int], ...] = ()  # the events' types (issue 26), (code, total); none: one
    queue_seed: str = "seed.sql"  # bench/queue/<file>: how the long waiting list is seeded


@dataclass(frozen=True)
class Reader:
    """A wrk stream run beside a scenario's load, recorded under its own name."""

    script: str
    args: list[str]
    connections: int
    threads: int = 1


SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario("hot", status="status"),
        # hot with a webhook registered for every change and one dispatcher delivering them (issue 15):
        # what the outbox costs the booking path, and the dispatcher's throughput and lag (bench/webhooks.py)
        Scenario("hot-webhook", webhook=True),
        # hot with a bearer JWT per request (RS256, keys from a JWKS): what verifying a token costs
        Scenario("hot-jwt", wrk_script="book_jwt.lua", status="status-jwt", auth=JWT),
        Scenario("sold-out", tickets=100),
        Scenario("churn", wrk_script="churn.lua", pgbench_scripts=("cancel", "book"), churn=True),
        Scenario("spread", events=1000, tickets=1000),
        # hot and spread with every v2 capability on (issue 17): a bearer JWT per request, a webhook for
        # every event with its dispatcher delivering, 1..4 tickets per booking (as every booking script)
        Scenario("hot-v2", wrk_script="book_jwt.lua", status="status-v2", auth=JWT, webhook=True),
        Scenario("spread-v2", events=1000, tickets=1000, wrk_script="book_jwt.lua", auth=JWT, webhook=True),
        # hot, while waiting users poll their place in a queue of a million (HTTP only: the reads are
        # the point, and pgbench's ceiling is hot's)
        Scenario("queue", pgbench_scripts=(), queue=True),
        # hot with checkout holds (issue 25): every booking held, and confirmed by a second stream shortly
        # after, as a payment backend would (its confirms recorded as "confirm"); pgbench books and confirms
        Scenario("hot-hold", pgbench_scripts=("book_hold",), hold_ttl_s=900, confirm=True),
        # hot on an event of three ticket types under a shared cap (issue 26), each booking of 1..3 items
        # (bench/wrk/book_types.lua); pgbench books the same items (bench/pgbench/book_types_*.sql)
        Scenario("hot-types", wrk_script="book_types.lua", pgbench_scripts=("book_types",), ticket_types=HOT_TYPES),
        # queue, with the million waiting entries over five types (bench/queue/seed_types.sql): each place
        # is counted per item from its type's counters and tree
        Scenario("queue-types", pgbench_scripts=(), queue=True, queue_seed="seed_types.sql"),
    )
}


class Bench:
    """Runs every measurement of one `make bench` and collects one record per run."""

    def __init__(self, settings: Settings, database: BenchDatabase, log_path) -> None:
        self.settings = settings
        self.database = database
        self.log_path = log_path
        self.wrk = ensure_wrk()
        self.pgbench = find_pgbench()
        self.groups = itertools.count(1)
        self.meter = CpuMeter(postmaster_pid(database.engine))
        self.records: list[dict] = []
        self.servers: dict[str, dict] = {}
        self.identity: BenchIdentity | None = None
        self.webhooks: WebhookSide | None = None  # while a webhook scenario runs

    def run(self) -> list[dict]:
        with contextlib.ExitStack() as stack:
            if any(SCENARIOS[name].auth == JWT for name in self.settings.scenarios):
                longest_run_s = max(self.settings.duration_s, self.settings.warmup_s)
                self.identity = stack.enter_context(BenchIdentity(self.settings.generator_threads, longest_run_s))
            for repeat in range(self.settings.repeats):
                for server_class in self._server_order(repeat):
                    self._floor(server_class, repeat)
                for auth in (JWT, OPEN):  # hot-jwt then hot: the pair compared runs back to back
                    for server_class in self._server_order(repeat):
                        self._scenarios(server_class, auth, repeat)
        return self.records

    def _server_order(self, repeat: int) -> list[type[Server]]:
        """The servers compared (BENCH_SERVERS), each repeat starting with the next, so none always goes first."""
        names = self.settings.servers
        return [SERVERS[names[(repeat + i) % len(names)]] for i in range(len(names))]

    def _primary(self, server: Server) -> bool:
        """Whether `server` is the first of BENCH_SERVERS: the one whose runs the ratios and targets read."""
        return server.name == self.settings.servers[0]

    def _floor(self, server_class: type[Server], repeat: int) -> None:
        with server_class("bench.floor:app", self.database.url, self.log_path) as server:
            self.servers[self._settings_key(server, "floor")] = server.settings()
            self._warm_up(server, "book.lua", ["/bench/floor"])
            group = next(self.groups)
            self._http(server, "floor", repeat, "book.lua", [str(group), "1", "/bench/floor"])

    def _settings_key(self, server: Server, role: str) -> str:
        return role if self._primary(server) else f"{role}@{server.name}"

    def _scenarios(self, server_class: type[Server], auth: str, repeat: int) -> None:
        """The chosen scenarios of one AUTH_MODE, against one server started in that mode; pgbench's runs
        (which no web server serves) beside the first server's only."""
        scenarios = [SCENARIOS[name] for name in self.settings.scenarios if SCENARIOS[name].auth == auth]
        if not scenarios:
            return
        server_env = self.identity.server_env() if auth == JWT else {}
        with server_class("wsgi:app", self.database.url, self.log_path, server_env) as server:
            self.servers[self._settings_key(server, "app" if auth == OPEN else f"app-{auth}")] = server.settings()
            self._warm_up(server, WARM_UP_SCRIPTS[auth], self._script_tail(auth))
            for scenario in scenarios:
                with self._webhook_side(scenario, server):
                    self._scenario_over_http(server, scenario, repeat)
                    pgbench = scenario.pgbench_scripts and self._primary(server)
                    for form in PGBENCH_FORMS if pgbench else ():
                        self._scenario_with_pgbench(server, scenario, form, repeat)

    @contextlib.contextmanager
    def _webhook_side(self, scenario: Scenario, server: Server):
        """For a webhook scenario, the receiver and a dispatcher beside `server` while its runs go."""
        if not scenario.webhook:
            yield
            return
        with WebhookSide(
            server.url, server.env, self.database.engine, self.log_path, self.settings.drain_timeout_s
        ) as self.webhooks:
            yield
        self.webhooks = None

    def _deliveries(self):
        """Around one run: its webhook's deliveries measured (a dict filled in on the way out), if any."""
        return self.webhooks.measured() if self.webhooks else contextlib.nullcontext()

    def _service_processes(self, server: Server) -> list[psutil.Process]:
        """Whose CPU time is the service's: the web server's, and the dispatcher's while one runs."""
        return server.processes() + (self.webhooks.processes() if self.webhooks else [])

    def _script_tail(self, auth: str) -> list[str]:
        """The wrk arguments after the events: in jwt mode, where the token pools are."""
        return [str(self.identity.directory)] if auth == JWT else []

    def _warm_up(self, server: Server, script: str, tail: list[str]) -> None:
        """Fill the connection pools and let each worker serve its first requests (and fetch the JWKS)."""
        group = next(self.groups)
        self.database.create_events(group, 1, 1_000_000, "warm-up")
        child = start_wrk(
            self.wrk,
            server.url,
            script,
            [str(group), "1", *tail],
            self.settings.clients,
            self.settings.generator_threads,
            self.settings.warmup_s,
        )
        wrk_result(child)

    def _scenario_over_http(self, server: Server, scenario: Scenario, repeat: int) -> None:
        group = self._prepare(scenario, pools=range(1, self.settings.generator_threads + 1))
        args = [str(group)] if scenario.churn else [str(group), str(scenario.events)]
        args += self._script_tail(scenario.auth)
        with self._deliveries() as deliveries:
            record = self._http(
                server, scenario.name, repeat, scenario.wrk_script, args, self._readers(scenario, group)
            )
        self._finish(record, group, deliveries)

    def _finish(self, record: dict, group: int, deliveries: dict | None) -> None:
        record["check"] = self.database.check(group)
        print(report.commits_line(record["check"]["commits"]), flush=True)
        if deliveries is not None:
            record["dispatch"] = deliveries
            print(report.dispatch_line(deliveries), flush=True)

    def _readers(self, scenario: Scenario, group: int) -> dict[str, Reader]:
        """The streams run beside a scenario's load (paced reads, confirms), by record name."""
        s = self.settings
        pause = str(s.status_pause_ms)
        readers = (
            {scenario.status: Reader("status.lua", [str(group), pause], s.status_connections)}
            if scenario.status
            else {}
        )
        if scenario.queue:
            queue_event = event_id(group, QUEUE_EVENT)
            for band, (first, last) in QUEUE_BANDS.items():
                readers[f"{scenario.name}-{band}"] = Reader(
                    "queue_status.lua", [queue_event, pause, str(first), str(last)], s.status_connections
                )
        if scenario.confirm:
            # As many confirming connections as booking ones, each one thread of its own (confirm.lua).
            stride = max(1, s.clients // s.generator_threads)
            args = [str(group), str(s.generator_threads), str(stride), str(CONFIRM_RETRY_MS)]
            readers["confirm"] = Reader("confirm.lua", args, s.generator_threads * stride, s.generator_threads * stride)
        return readers

    def _http(
        self,
        server,
        scenario: str,
        repeat: int,
        script: str,
        args: list[str],
        readers: dict[str, Reader] | None = None,
    ) -> dict:
        """One wrk run and, beside it, `readers`' paced reads, each recorded under its name."""
        s = self.settings
        before = self.meter.snapshot(self._service_processes(server))
        load = start_wrk(self.wrk, server.url, script, args, s.clients, s.generator_threads, s.duration_s)
        reads = {
            name: start_wrk(self.wrk, server.url, r.script, r.args, r.connections, r.threads, s.duration_s)
            for name, r in (readers or {}).items()
        }
        record = self._record(scenario, "http", repeat, wrk_result(load), server.name)
        generators = record["generator_cpu_share"]
        for name, child in reads.items():
            generators += self._record(name, "http", repeat, wrk_result(child), server.name)["generator_cpu_share"]
        after = self.meter.snapshot(self._service_processes(server))
        record["cpu"] = self.meter.breakdown(before, after, generators, record["requests"])
        return record

    def _scenario_with_pgbench(self, server: Server, scenario: Scenario, form: str, repeat: int) -> None:
        s = self.settings
        group = self._prepare(scenario, pools=range(0, s.clients))  # pgbench's :client_id is 0-based
        variables = {"event_prefix": event_prefix(group), "event_count": scenario.events, "n": 0, "c": 0}
        scripts = [f"{name}_{form}.sql" for name in scenario.pgbench_scripts]
        with self._deliveries() as deliveries:
            before = self.meter.snapshot(self._service_processes(server))
            result = run_pgbench(
                self.pgbench,
                scripts,
                variables,
                self.database.libpq_environment(),
                s.clients,
                s.generator_threads,
                s.duration_s,
            )
            record = self._record(scenario.name, f"pgbench-{form}", repeat, result, server.name)
            after = self.meter.snapshot(self._service_processes(server))
        record["cpu"] = self.meter.breakdown(before, after, result["generator_cpu_share"], result["requests"])
        self._finish(record, group, deliveries)

    def _prepare(self, scenario: Scenario, pools: range) -> int:
        """Fresh events for one run; returns their group."""
        group = next(self.groups)
        if scenario.churn:
            pool_size = math.ceil(CHURN_CANCELS_PER_S_BUDGET * self.settings.duration_s / len(pools))
            self.database.create_churn_event(group, pools, pool_size, CHURN_WAITERS)
        else:
            self.database.create_events(
                group, scenario.events, scenario.tickets, scenario.name, scenario.hold_ttl_s, scenario.ticket_types
            )
        if scenario.queue:
            self.database.seed_queue(group, QUEUE_EVENT, QUEUE_WAITING, find_psql(self.pgbench), scenario.queue_seed)
        self.database.settle()
        return group

    def _record(self, scenario: str, runner: str, repeat: int, result: dict, server: str) -> dict:
        record = {"scenario": scenario, "runner": runner, "server": server, "repeat": repeat, **result}
        self.records.append(record)
        print(report.one_line(record), flush=True)
        return record


def main() -> int:
    settings = Settings.from_env()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    started, load_at_start = time.monotonic(), os.getloadavg()
    # `draw` is no wrk load but a run of its own (bench/draw.py), after the others, on its own database.
    wrk_scenarios = tuple(name for name in settings.scenarios if name != DRAW)
    with postgres_server(settings.database_url) as server_url:
        database = BenchDatabase(server_url)
        database.recreate()
        try:
            bench = Bench(
                dataclasses.replace(settings, scenarios=wrk_scenarios), database, RESULTS_DIR / f"{stamp}-server.log"
            )
            records = bench.run() if wrk_scenarios else []
            postgres = database.postgres_settings()
        finally:
            database.dispose()
        lobby = opening.measure(server_url) if DRAW in settings.scenarios else None
    elapsed_s = time.monotonic() - started
    results = report.build(stamp, settings, records, bench.servers, postgres, elapsed_s, load_at_start, lobby)
    report.publish(results, RESULTS_DIR)
    return 0 if results["all_checks_ok"] else 1
