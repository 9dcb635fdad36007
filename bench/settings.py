"""What a bench run does, from the environment (defaults: about ten minutes; BENCH_REPEATS=1 takes four)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
# The web servers compared, each with every scenario; the first one's runs make the ratios and targets:
# gunicorn, which `make run` serves on (docs/performance.md says why granian does not).
DEFAULT_SERVERS = "gunicorn,granian"
DEFAULT_SCENARIOS = (
    "hot,hot-webhook,hot-jwt,sold-out,churn,spread,hot-v2,spread-v2,queue,hot-hold,hot-types,queue-types,draw"
)


@dataclass(frozen=True)
class Settings:
    """One bench run's knobs; each is an environment variable named in `from_env`."""

    database_url: str | None  # a server to bench on; None: the embedded one under instance/
    duration_s: int  # of each measured run
    warmup_s: int
    repeats: int  # each scenario this many times, interleaved; the report takes medians (runs vary ±20% here)
    clients: int  # concurrent connections of the booking load (HTTP and pgbench alike)
    generator_threads: int  # wrk -t and pgbench -j
    status_connections: int
    status_pause_ms: int  # between two reads on one status connection
    scenarios: tuple[str, ...]
    servers: tuple[str, ...]  # BENCH_SERVERS: gunicorn, granian or both
    drain_timeout_s: int  # hot-webhook: how long the dispatcher may take to deliver a run's backlog

    @classmethod
    def from_env(cls, env: dict | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("BENCH_DATABASE_URL") or None,
            duration_s=int(env.get("BENCH_DURATION", 10)),
            warmup_s=int(env.get("BENCH_WARMUP", 3)),
            repeats=int(env.get("BENCH_REPEATS", 3)),
            clients=int(env.get("BENCH_CLIENTS", 64)),
            generator_threads=int(env.get("BENCH_GENERATOR_THREADS", os.cpu_count() or 2)),
            status_connections=int(env.get("BENCH_STATUS_CONNECTIONS", 4)),
            status_pause_ms=int(env.get("BENCH_STATUS_PAUSE_MS", 20)),
            scenarios=tuple(env.get("BENCH_SCENARIOS", DEFAULT_SCENARIOS).split(",")),
            servers=tuple(env.get("BENCH_SERVERS", DEFAULT_SERVERS).split(",")),
            drain_timeout_s=int(env.get("BENCH_DRAIN_TIMEOUT", 120)),
        )
