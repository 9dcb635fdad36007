"""The programs the cluster runs, from Debian's packages, installed with apt-get when missing.

Idempotent: a program already on the machine is used as it is, and nothing is installed twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cluster import ClusterError, say

# Daemons live in sbin, which an ordinary user's PATH often lacks.
SYSTEM_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def find_program(name: str) -> str | None:
    """Full path of the program `name`, on PATH or in the system directories; None if absent."""
    found = shutil.which(name)
    if found:
        return found
    candidates = (Path(directory) / name for directory in SYSTEM_DIRS)
    return next((str(path) for path in candidates if os.access(path, os.X_OK)), None)


def ensure_programs(packages_by_program: dict[str, str]) -> dict[str, str]:
    """Path of each program, installing the Debian packages of those that are missing first."""
    missing = sorted({package for program, package in packages_by_program.items() if not find_program(program)})
    if missing:
        install(missing)
    paths = {program: find_program(program) for program in packages_by_program}
    absent = [program for program, path in paths.items() if path is None]
    if absent:
        raise ClusterError(f"{', '.join(absent)} still missing after installing {' '.join(missing)}")
    return paths


def install(packages: list[str]) -> None:
    """apt-get install `packages` (after apt-get update), or say how to when we cannot."""
    command = f"apt-get install -y {' '.join(packages)}"
    if shutil.which("apt-get") is None:
        raise ClusterError(f"{' '.join(packages)} not installed and no apt-get here: install them by hand")
    if os.geteuid() != 0:
        raise ClusterError(f"{' '.join(packages)} not installed: run `sudo apt-get update && sudo {command}`")
    say(f"installing {' '.join(packages)} from Debian's packages (apt-get)...")
    _apt(["apt-get", "update", "-qq"])
    _apt(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages])


def _apt(argv: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise ClusterError(f"`{' '.join(argv)}` failed ({result.returncode}):\n{tail}")
