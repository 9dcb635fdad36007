"""Summaries of a bench run: medians per scenario, ratios, targets, JSON, table and plot."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
from pathlib import Path

from bench.settings import ROOT

BOOKING_SCENARIOS = (
    "hot",
    "hot-webhook",
    "hot-jwt",
    "sold-out",
    "churn",
    "spread",
    "hot-v2",
    "spread-v2",
    "queue",
    "hot-hold",
    "hot-types",
    "queue-types",
)
# The queue scenarios' reads: booking-status polled at random positions of each band (bench/run.py).
QUEUE_BANDS = ("front", "middle", "back")
QUEUE_READS = tuple(f"{queue}-{band}" for queue in ("queue", "queue-types") for band in QUEUE_BANDS)
# hot-hold's second stream, the payment backend's confirms (bench/wrk/confirm.lua), reported like the reads.
READ_SCENARIOS = ("status", "status-jwt", "status-v2", *QUEUE_READS, "confirm")
RUNNERS = ("http", "pgbench-multi", "pgbench-function")
# hot-webhook's delivery figures (bench/webhooks.py): medians over the repeats, except these, summed.
DISPATCH_MEDIANS = (
    "messages",
    "delivered_during_load",
    "delivered_per_s_during_load",
    "delivered_after_load",
    "drain_s",
    "delivered_per_s_draining",
)
DISPATCH_SUMS = ("undelivered", "retried", "duplicates")


def one_line(record: dict) -> str:
    """Progress line for one run, printed as the bench goes."""
    latency = record["latency_ms"]
    return (
        f"  {record['scenario']:<10} {record['runner']:<17} {record.get('server', ''):<9}"
        f"{record['requests_per_s']:8.1f}/s  "
        f"p50 {latency.get('50', 0):7.1f} ms  p99 {latency.get('99', 0):7.1f} ms  "
        f"errors {record['errors']}  generator CPU {record['generator_cpu_share']:.0%}"
    )


def commits_line(commits: dict) -> str:
    """Progress line for one run's bookings per commit (bench/database.py, COMMITS)."""
    return (
        f"    bookings per commit: mean {commits['mean']}, max {commits['max']}, "
        f"{commits['alone']} of {commits['commits']} commits alone"
    )


def dispatch_line(dispatch: dict) -> str:
    """Progress line for one run's webhook deliveries."""
    lag = dispatch["lag_s"]
    return (
        f"    dispatcher: {dispatch['messages']} messages, {dispatch['delivered_per_s_during_load']:.0f}/s during "
        f"the load, {dispatch['delivered_per_s_draining'] or 0:.0f}/s draining ({dispatch['drain_s']:.1f} s), "
        f"lag p50 {lag['p50']} s max {lag['max']} s, undelivered {dispatch['undelivered']}"
    )


def build(
    stamp: str,
    settings,
    records: list[dict],
    servers: dict,
    postgres: dict,
    elapsed_s: float,
    load_at_start: tuple,
    lobby: dict | None = None,
) -> dict:
    """The run's results; `lobby` is the draw scenario's (bench/draw.py), when it ran."""
    primary = settings.servers[0]
    summary = _medians([record for record in records if record.get("server", primary) == primary])
    checks = [record["check"]["ok"] for record in records if "check" in record]
    checks += [lobby["check"]["ok"]] if lobby else []
    return {
        "timestamp": stamp,
        "machine": {**_machine(), "load_average_at_start": load_at_start},
        "settings": dataclasses.asdict(settings),
        "servers": servers,
        "postgres": postgres,
        "elapsed_s": round(elapsed_s, 1),
        "summary": summary,
        "by_server": {name: _medians([r for r in records if r.get("server") == name]) for name in settings.servers},
        "ratios": _ratios(summary),
        "jwt_cost": jwt_cost(summary),
        "webhooks": webhook_cost(summary),
        "queue_places": queue_places(summary),
        "queue_types_places": queue_places(summary, "queue-types"),
        "draw": lobby,
        "targets": _targets(summary, postgres) + _draw_targets(lobby),
        "all_checks_ok": bool(checks) and all(checks),
        "runs": records,
    }


def _medians(records: list[dict]) -> dict:
    """Per scenario and runner: the median of each figure over the repeats, errors summed."""
    grouped: dict[tuple, list[dict]] = {}
    for record in records:
        grouped.setdefault((record["scenario"], record["runner"]), []).append(record)
    summary: dict[str, dict] = {}
    for (scenario, runner), runs in grouped.items():
        summary.setdefault(scenario, {})[runner] = {
            "runs": len(runs),
            "requests_per_s": _median(run["requests_per_s"] for run in runs),
            "requests_per_s_range": [min(r["requests_per_s"] for r in runs), max(r["requests_per_s"] for r in runs)],
            "latency_ms": {p: _median(run["latency_ms"].get(p, 0) for run in runs) for p in ("50", "95", "99")},
            "errors": sum(run["errors"] for run in runs),
            "generator_cpu_share": _median(run["generator_cpu_share"] for run in runs),
            "cpu": _median_cpu([run["cpu"] for run in runs if "cpu" in run]),
            "checks_ok": all(run["check"]["ok"] for run in runs if "check" in run),
            **_dispatch_summary([run["dispatch"] for run in runs if "dispatch" in run]),
        }
    return summary


def _dispatch_summary(dispatches: list[dict]) -> dict:
    """{"dispatch": ...} over a webhook scenario's repeats; nothing for the other scenarios."""
    if not dispatches:
        return {}
    figures = {name: _median(d[name] or 0 for d in dispatches) for name in DISPATCH_MEDIANS}
    figures |= {name: sum(d[name] for d in dispatches) for name in DISPATCH_SUMS}
    lags = [d["lag_s"] for d in dispatches if d["lag_s"]["samples"]]
    figures["lag_s"] = {
        "p50": _median(lag["p50"] for lag in lags) if lags else None,
        "max": max((lag["max"] for lag in lags), default=None),
    }
    figures["dispatcher_cpu_share_during_load"] = _median(d["dispatcher_cpu_share"]["during_load"] for d in dispatches)
    figures["drained"] = all(d["drained"] for d in dispatches)
    return {"dispatch": figures}


def _median_cpu(breakdowns: list[dict]) -> dict:
    if not breakdowns:
        return {}
    return {
        part: {name: _median(b[part][name] for b in breakdowns) for name in breakdowns[0][part]}
        for part in breakdowns[0]
    }


def _median(values) -> float:
    return round(statistics.median(list(values)), 3)


def _ratios(summary: dict) -> dict:
    ratios = {}
    for scenario in BOOKING_SCENARIOS:
        runners = summary.get(scenario, {})
        if "http" not in runners:
            continue
        http = runners["http"]["requests_per_s"]
        ratios[scenario] = {
            f"http_vs_{runner}": round(http / runners[runner]["requests_per_s"], 3)
            for runner in RUNNERS[1:]
            if runners.get(runner, {}).get("requests_per_s")
        }
    floor = summary.get("floor", {}).get("http", {}).get("requests_per_s")
    for spread in ("spread", "spread-v2"):
        if floor and spread in ratios:
            ratios[spread]["http_vs_floor"] = round(summary[spread]["http"]["requests_per_s"] / floor, 3)
    return ratios


def jwt_cost(summary: dict) -> dict | None:
    """What verifying a bearer JWT costs per request: hot-jwt beside hot (None unless both ran)."""
    open_, jwt = (summary.get(name, {}).get("http") for name in ("hot", "hot-jwt"))
    if not (open_ and jwt):
        return None
    cost = {"requests_per_s_ratio": round(jwt["requests_per_s"] / open_["requests_per_s"], 3)}
    if open_["cpu"] and jwt["cpu"]:
        for part in ("server", "postgres"):
            per_request = (open_["cpu"]["ms_per_request"][part], jwt["cpu"]["ms_per_request"][part])
            cost[f"{part}_cpu_ms_per_request"] = {
                "open": per_request[0],
                "jwt": per_request[1],
                "difference": round(per_request[1] - per_request[0], 3),
            }
    return cost


def webhook_cost(summary: dict) -> dict | None:
    """hot-webhook beside hot: what a registered webhook costs the booking path, and the deliveries of
    each runner's load (None unless hot-webhook ran)."""
    runners = summary.get("hot-webhook")
    if not runners or "http" not in runners:
        return None
    hot, hot_multi = (summary.get("hot", {}).get(runner, {}).get("requests_per_s") for runner in RUNNERS[:2])
    http = runners["http"]["requests_per_s"]
    return {
        "requests_per_s_vs_hot": round(http / hot, 3) if hot else None,
        "http_vs_hot_pgbench_multi": round(http / hot_multi, 3) if hot_multi else None,
        "dispatch": {runner: figures["dispatch"] for runner, figures in runners.items() if "dispatch" in figures},
    }


def queue_places(summary: dict, queue: str = "queue") -> dict | None:
    """booking-status in a queue of a million, by band of positions (None unless that queue scenario ran)."""
    reads = {band: f"{queue}-{band}" for band in QUEUE_BANDS}
    bands = {band: summary[name]["http"] for band, name in reads.items() if name in summary}
    if not bands:
        return None
    return {
        band: {
            "p50_ms": run["latency_ms"]["50"],
            "p99_ms": run["latency_ms"]["99"],
            "requests_per_s": run["requests_per_s"],
            "errors": run["errors"],
        }
        for band, run in bands.items()
    }


def _targets(summary: dict, postgres: dict) -> list[dict]:
    """The issue's targets, each with the measured value and whether it holds."""

    def figure(scenario, runner, *path):
        value = summary.get(scenario, {}).get(runner)
        for key in path:
            value = None if value is None else value.get(key)
        return value

    hot, multi, function = (figure("hot", r, "requests_per_s") for r in RUNNERS)
    hot_jwt, jwt_multi = (figure("hot-jwt", r, "requests_per_s") for r in RUNNERS[:2])
    spread, floor = figure("spread", "http", "requests_per_s"), figure("floor", "http", "requests_per_s")
    webhook, webhook_multi = (figure("hot-webhook", r, "requests_per_s") for r in RUNNERS[:2])
    undelivered = _undelivered(summary.get("hot-webhook", {}))
    v2, v2_multi, v2_function = (figure("hot-v2", r, "requests_per_s") for r in RUNNERS)
    spread_v2 = figure("spread-v2", "http", "requests_per_s")
    hold, hold_multi = (figure("hot-hold", r, "requests_per_s") for r in RUNNERS[:2])
    types, types_multi = (figure("hot-types", r, "requests_per_s") for r in RUNNERS[:2])
    targets = [
        ("hot: HTTP >= 1.0 x pgbench multi-statement", hot and multi and hot / multi, ">=", 1.0),
        ("hot: p99 <= 150 ms", figure("hot", "http", "latency_ms", "99"), "<=", 150),
        ("hot: zero errors", figure("hot", "http", "errors"), "<=", 0),
        ("hot (stretch): HTTP >= 1.0 x pgbench function", hot and function and hot / function, ">=", 1.0),
        ("hot: HTTP >= 1.2 x pgbench multi (a change to the write path)", hot and multi and hot / multi, ">=", 1.2),
        ("hot-jwt: HTTP >= 1.0 x pgbench multi-statement", hot_jwt and jwt_multi and hot_jwt / jwt_multi, ">=", 1.0),
        ("hot-jwt: zero errors", figure("hot-jwt", "http", "errors"), "<=", 0),
        (
            "hot-webhook: HTTP >= 1.0 x pgbench multi-statement",
            webhook and webhook_multi and webhook / webhook_multi,
            ">=",
            1.0,
        ),
        ("hot-webhook: zero errors", figure("hot-webhook", "http", "errors"), "<=", 0),
        ("hot-webhook: every message delivered within BENCH_DRAIN_TIMEOUT", undelivered, "<=", 0),
        ("spread: HTTP >= 0.8 x floor", spread and floor and spread / floor, ">=", 0.8),
        ("status: p99 <= 20 ms during hot", figure("status", "http", "latency_ms", "99"), "<=", 20),
        # issue 17: with every v2 capability on (a JWT per request, a webhook, 1..4 tickets)
        ("hot-v2: HTTP >= 2.0 x pgbench multi-statement", v2 and v2_multi and v2 / v2_multi, ">=", 2.0),
        ("hot-v2: HTTP >= 1.4 x pgbench function", v2 and v2_function and v2 / v2_function, ">=", 1.4),
        ("hot-v2: p99 <= 100 ms", figure("hot-v2", "http", "latency_ms", "99"), "<=", 100),
        ("hot-v2: zero errors", figure("hot-v2", "http", "errors"), "<=", 0),
        ("status-v2: p99 <= 20 ms during hot-v2", figure("status-v2", "http", "latency_ms", "99"), "<=", 20),
        ("spread-v2: HTTP >= 0.45 x floor", spread_v2 and floor and spread_v2 / floor, ">=", 0.45),
        ("spread-v2: zero errors", figure("spread-v2", "http", "errors"), "<=", 0),
        ("queue: booking-status p50 at the back <= 2 x at the front", _back_over_front(summary), "<=", 2.0),
        # issue 25: every booking held, and confirmed by a second stream (pgbench: both, one after the other)
        ("hot-hold: HTTP >= 1.2 x pgbench multi-statement", hold and hold_multi and hold / hold_multi, ">=", 1.2),
        ("hot-hold: zero errors", figure("hot-hold", "http", "errors"), "<=", 0),
        # issue 26: three types under a shared cap, 1..3 items per booking; a queue of a million over five types
        ("hot-types: HTTP >= 1.2 x pgbench multi-statement", types and types_multi and types / types_multi, ">=", 1.2),
        ("hot-types: zero errors", figure("hot-types", "http", "errors"), "<=", 0),
        (
            "queue-types: booking-status p50 at the back <= 2 x at the front (5 types)",
            _back_over_front(summary, "queue-types"),
            "<=",
            2.0,
        ),
    ]
    out = [_target(name, value, op, limit) for name, value, op, limit in targets]
    durable = postgres.get("synchronous_commit") == "on" and postgres.get("fsync") == "on"
    out.append({"name": "synchronous_commit and fsync on", "value": durable, "ok": durable})
    return out


def _draw_targets(lobby: dict | None) -> list[dict]:
    """Issue 27's targets, from the draw scenario's results (bench/draw.py), if it ran."""
    if lobby is None:
        return []
    storm, draw = lobby["storm"], lobby["draw"]
    targets = [
        (
            "draw: a lobby of 100 000 drawn and booked <= 10 s after the opening",
            draw["seconds_from_opening_to_drawn"],
            "<=",
            10,
        ),
        ("draw: status p99 <= 50 ms during the draw", draw["status_ms_during_draw"].get("99"), "<=", 50),
        (
            f"draw: the storm puts >= 10 000 users in the lobby in {storm['seconds']} s",
            storm["users_in_lobby"],
            ">=",
            10_000,
        ),
        ("draw: the storm's zero errors", storm["errors"], "<=", 0),
    ]
    return [_target(name, value, op, limit) for name, value, op, limit in targets]


def _undelivered(runners: dict) -> int | None:
    """Messages still pending or failed once a hot-webhook run's drain ended, over all its runs."""
    dispatches = [figures["dispatch"] for figures in runners.values() if "dispatch" in figures]
    return sum(d["undelivered"] for d in dispatches) if dispatches else None


def _back_over_front(summary: dict, queue: str = "queue") -> float | None:
    front, back = (summary.get(f"{queue}-{band}", {}).get("http") for band in ("front", "back"))
    if not (front and back and front["latency_ms"]["50"]):
        return None
    return round(back["latency_ms"]["50"] / front["latency_ms"]["50"], 3)


def _target(name: str, value, op: str, limit: float) -> dict:
    if value is None:
        return {"name": name, "value": None, "ok": None}
    ok = value >= limit if op == ">=" else value <= limit
    return {"name": name, "value": round(value, 3), "ok": ok}


def _machine() -> dict:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_end": os.getloadavg(),
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def publish(results: dict, results_dir: Path) -> None:
    """Write <stamp>.json and <stamp>.png (and latest.*), and print the table."""
    json_path = results_dir / f"{results['timestamp']}.json"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    png_path = results_dir / f"{results['timestamp']}.png"
    from bench.plot import plot  # matplotlib is slow to import; only needed here

    plot(results, png_path)
    shutil.copyfile(json_path, results_dir / "latest.json")
    shutil.copyfile(png_path, results_dir / "latest.png")
    print(markdown_table(results))
    print(f"\nResults: {json_path.relative_to(ROOT)}, plot: {png_path.relative_to(ROOT)}")


def markdown_table(results: dict) -> str:
    """The figures as README.md shows them."""
    summary, ratios = results["summary"], results["ratios"]
    lines = [
        _setting_line(results),
        "",
        "| scenario | HTTP req/s | p50 ms | p95 ms | p99 ms | errors | pgbench multi tx/s | pgbench function tx/s "
        "| HTTP / multi | HTTP / function | CPU ms/req server + PG | others' CPU | invariants |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for scenario in ("floor", *BOOKING_SCENARIOS, *READ_SCENARIOS):
        if scenario in summary:
            lines.append(_table_row(scenario, summary[scenario], ratios.get(scenario, {})))
    lines += servers_table(results.get("by_server") or {})
    lines += _jwt_cost_table(results.get("jwt_cost"), ratios)
    lines += _webhook_table(results.get("webhooks"), ratios)
    lines += ["", "| target | measured | holds |", "|---|---:|---|"]
    for target in results["targets"]:
        verdict = {True: "yes", False: "**no**", None: "not measured"}[target["ok"]]
        lines.append(f"| {target['name']} | {target['value']} | {verdict} |")
    return "\n".join(lines)


def servers_table(by_server: dict) -> list[str]:
    """The web servers compared (BENCH_SERVERS), scenario by scenario: the same load over HTTP on each."""
    if len(by_server) < 2:
        return []
    names = list(by_server)
    baseline = "gunicorn" if "gunicorn" in names else names[0]
    lines = [
        "",
        "| scenario | server | HTTP req/s | p99 ms | errors | server CPU ms/req | PostgreSQL CPU ms/req "
        f"| server CPU vs {baseline} |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in ("floor", *BOOKING_SCENARIOS, *READ_SCENARIOS):
        runs = {name: by_server[name].get(scenario, {}).get("http") for name in names}
        for name, http in runs.items():
            if http:
                lines.append(_server_row(scenario, name, http, runs[baseline]))
    return lines


def _server_row(scenario: str, name: str, http: dict, baseline: dict | None) -> str:
    per_request = http["cpu"].get("ms_per_request", {}) if http["cpu"] else {}
    server, postgres = per_request.get("server"), per_request.get("postgres")
    base = (baseline or {}).get("cpu", {}).get("ms_per_request", {}).get("server")
    versus = f"{server / base - 1:+.0%}" if server is not None and base else ""
    return (
        f"| {scenario} | {name} | {http['requests_per_s']:.0f} | {http['latency_ms']['99']:.1f} | {http['errors']} "
        f"| {_fixed(server)} | {_fixed(postgres)} | {versus} |"
    )


def _jwt_cost_table(cost: dict | None, ratios: dict) -> list[str]:
    """hot and hot-jwt side by side: the same load, with a bearer JWT to verify per request or not."""
    if cost is None:
        return []
    server, postgres = cost.get("server_cpu_ms_per_request"), cost.get("postgres_cpu_ms_per_request")
    lines = ["", "| verifying a JWT (hot-jwt vs hot) | open | jwt | jwt - open |", "|---|---:|---:|---:|"]
    if server:
        for label, part in (("server CPU ms/req", server), ("PostgreSQL CPU ms/req", postgres)):
            lines.append(f"| {label} | {part['open']:.3f} | {part['jwt']:.3f} | {part['difference']:+.3f} |")
    multi = [ratios.get(name, {}).get("http_vs_pgbench-multi") for name in ("hot", "hot-jwt")]
    lines.append(f"| HTTP / pgbench multi | {_fixed(multi[0])} | {_fixed(multi[1])} | |")
    lines.append(f"| req/s, jwt / open | | {cost['requests_per_s_ratio']:.2f} | |")
    return lines


WEBHOOK_ROWS = (
    ("messages written", lambda d: f"{d['messages']:.0f}"),
    ("delivered/s during the load", lambda d: f"{d['delivered_per_s_during_load']:.0f}"),
    ("delivered/s after it, until drained", lambda d: f"{d['delivered_per_s_draining']:.0f}"),
    ("drain s", lambda d: f"{d['drain_s']:.1f}"),
    ("lag during the load, p50 / max s", lambda d: f"{_fixed(d['lag_s']['p50'])} / {_fixed(d['lag_s']['max'])}"),
    ("dispatcher CPU share during the load", lambda d: f"{d['dispatcher_cpu_share_during_load']:.0%}"),
    ("undelivered / retried / duplicates", lambda d: f"{d['undelivered']} / {d['retried']} / {d['duplicates']}"),
)


def _webhook_table(webhooks: dict | None, ratios: dict) -> list[str]:
    """hot-webhook's deliveries under each runner's load, and what the webhook cost the booking path."""
    if webhooks is None:
        return []
    runners = [runner for runner in RUNNERS if runner in webhooks["dispatch"]]
    lines = [
        "",
        f"| webhooks (hot-webhook), under the load of | {' | '.join(runners)} |",
        f"|---|{'---:|' * len(runners)}",
    ]
    for label, cell in WEBHOOK_ROWS:
        lines.append(f"| {label} | {' | '.join(cell(webhooks['dispatch'][runner]) for runner in runners)} |")
    lines.append(
        f"| HTTP / pgbench multi, both with the webhook | "
        f"{_fixed(ratios.get('hot-webhook', {}).get('http_vs_pgbench-multi'))} |"
    )
    lines.append(f"| HTTP / hot's pgbench multi (no webhook) | {_fixed(webhooks['http_vs_hot_pgbench_multi'])} |")
    lines.append(f"| HTTP req/s, hot-webhook / hot | {_fixed(webhooks['requests_per_s_vs_hot'])} |")
    return lines


def _fixed(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _table_row(scenario: str, runners: dict, ratios: dict) -> str:
    http = runners["http"]
    latency = http["latency_ms"]

    def rate(runner):
        return f"{runners[runner]['requests_per_s']:.0f}" if runner in runners else ""

    def ratio(name):
        return f"{ratios[name]:.2f}" if name in ratios else ""

    check = {True: "ok", False: "**FAILED**"}[all(r["checks_ok"] for r in runners.values())]
    if scenario in ("floor", *READ_SCENARIOS):
        check = ""
    cpu = http["cpu"]
    per_request = f"{cpu['ms_per_request']['server']:.2f} + {cpu['ms_per_request']['postgres']:.2f}" if cpu else ""
    others = f"{cpu['shares']['others']:.0%}" if cpu else ""
    return (
        f"| {scenario} | {http['requests_per_s']:.0f} | {latency['50']:.1f} | {latency['95']:.1f} "
        f"| {latency['99']:.1f} | {http['errors']} | {rate('pgbench-multi')} | {rate('pgbench-function')} "
        f"| {ratio('http_vs_pgbench-multi')} | {ratio('http_vs_pgbench-function')} | {per_request} | {others} "
        f"| {check} |"
    )


def _setting_line(results: dict) -> str:
    servers = results["servers"]
    machine, settings, app = results["machine"], results["settings"], servers.get("app") or servers.get("app-jwt", {})
    return (
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB; PostgreSQL "
        f"{results['postgres'].get('server_version')}, synchronous_commit={results['postgres'].get('synchronous_commit')}; "
        f"{app.get('server', 'gunicorn')} {app.get('workers')} workers, {app.get('write_concurrency')} writes at once "
        f"per worker, pool "
        f"{app.get('db_pool_size_per_worker')}/worker; {settings['clients']} clients, "
        f"{settings['duration_s']} s x {settings['repeats']} per scenario (medians); commit {machine['git_commit']}, "
        f"{results['timestamp']}."
    )
