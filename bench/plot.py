"""The PNG of a bench run: bookings/s per scenario with the PostgreSQL ceiling drawn in, and p99."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from bench.report import BOOKING_SCENARIOS, READ_SCENARIOS  # noqa: E402

CEILINGS = (
    ("pgbench-multi", "pgbench multi-statement", "tab:red", "--"),
    ("pgbench-function", "pgbench one statement (function)", "tab:green", "-"),
)


def plot(results: dict, path: Path) -> None:
    summary = results["summary"]
    scenarios = [s for s in BOOKING_SCENARIOS if s in summary]
    figure, (rates, latencies) = plt.subplots(1, 2, figsize=(13, 5), width_ratios=(3, 2))
    _throughput(rates, summary, scenarios)
    _p99(latencies, summary, [*scenarios, *(s for s in READ_SCENARIOS if s in summary)])
    machine = results["machine"]
    figure.suptitle(
        f"make bench {results['timestamp']}: {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{results['settings']['clients']} clients, synchronous_commit="
        f"{results['postgres'].get('synchronous_commit')}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _throughput(axes, summary: dict, scenarios: list[str]) -> None:
    positions = range(len(scenarios))
    bars = axes.bar(
        positions,
        [summary[s]["http"]["requests_per_s"] for s in scenarios],
        width=0.6,
        color="tab:blue",
        label="HTTP (wrk -> gunicorn -> PostgreSQL)",
    )
    axes.bar_label(bars, fmt="%.0f", fontsize=8)
    for runner, label, colour, style in CEILINGS:
        for x, scenario in zip(positions, scenarios, strict=True):
            if runner in summary[scenario]:
                rate = summary[scenario][runner]["requests_per_s"]
                axes.hlines(
                    rate,
                    x - 0.4,
                    x + 0.4,
                    colors=colour,
                    linestyles=style,
                    linewidth=2.5,
                    label=label if x == 0 else None,
                )
    floor = summary.get("floor", {}).get("http", {}).get("requests_per_s")
    if floor:
        axes.axhline(floor, color="grey", linestyle=":", label="floor: trivial JSON endpoint, no database")
    axes.set_xticks(list(positions), scenarios)
    axes.set_ylabel("bookings/s (median)")
    axes.set_title("Throughput, with the PostgreSQL ceiling (pgbench, same SQL)")
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)


def _p99(axes, summary: dict, scenarios: list[str]) -> None:
    positions = range(len(scenarios))
    values = [summary[s]["http"]["latency_ms"]["99"] for s in scenarios]
    bars = axes.bar(positions, values, width=0.6, color="tab:orange", label="HTTP p99")
    axes.bar_label(bars, fmt="%.0f", fontsize=8)
    limits = {"hot": 150, "status": 20}
    for x, scenario in zip(positions, scenarios, strict=True):
        if scenario in limits:
            axes.hlines(
                limits[scenario],
                x - 0.4,
                x + 0.4,
                colors="black",
                linewidth=2,
                label="target" if scenario == "hot" else None,
            )
    axes.set_xticks(list(positions), scenarios)
    axes.set_ylabel("ms")
    axes.set_title("p99 latency over HTTP (status: during the hot load)")
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
