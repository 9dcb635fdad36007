"""make bench's comparison of web servers (BENCH_SERVERS): the order of their runs and the report's table."""

from __future__ import annotations

from types import SimpleNamespace

from bench import report
from bench.run import Bench
from bench.settings import Settings


def http_summary(requests_per_s: float, server_ms: float) -> dict:
    return {
        "http": {
            "requests_per_s": requests_per_s,
            "latency_ms": {"50": 1.0, "95": 2.0, "99": 3.0},
            "errors": 0,
            "cpu": {"ms_per_request": {"server": server_ms, "postgres": 0.5}},
        }
    }


def test_each_repeat_starts_with_the_next_server_so_that_none_always_goes_first():
    bench = SimpleNamespace(settings=Settings.from_env({"BENCH_SERVERS": "gunicorn,granian"}))
    orders = [[server.name for server in Bench._server_order(bench, repeat)] for repeat in range(3)]
    assert orders == [["gunicorn", "granian"], ["granian", "gunicorn"], ["gunicorn", "granian"]]


def test_the_servers_table_gives_each_servers_cpu_per_request_against_gunicorns():
    by_server = {
        "granian": {"hot": http_summary(900, 1.2)},
        "gunicorn": {"hot": http_summary(600, 2.0)},
    }
    rows = report.servers_table(by_server)
    assert "server CPU vs gunicorn" in rows[1]
    assert rows[3:] == [
        "| hot | granian | 900 | 3.0 | 0 | 1.20 | 0.50 | -40% |",
        "| hot | gunicorn | 600 | 3.0 | 0 | 2.00 | 0.50 | +0% |",
    ]


def test_one_server_alone_makes_no_servers_table():
    assert report.servers_table({"gunicorn": {"hot": http_summary(600, 2.0)}}) == []
