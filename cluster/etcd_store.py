"""etcd (Debian's `etcd-server`), the store in which Patroni's members elect their leader.

One member: enough for one machine, and a single point of failure (docs/scaling.md says what production
runs instead). Its data lives beside the PostgreSQL members', so that a cluster started again finds the
leader lock and the cluster's identity it left.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cluster.processes import Managed, free_port, wait_until

START_TIMEOUT_S = 30


@dataclass
class Etcd:
    process: Managed
    client_port: int

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"


def start(program: str, data_dir: Path, log_dir: Path) -> Etcd:
    """A one-member etcd on free ports, keeping its data in `data_dir`; returned once it is healthy."""
    client_port, peer_port = free_port(), free_port()
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    argv = [
        program,
        "--name=etcd1",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=etcd1={peer}",
        # a member restarted on new ports keeps its identity: its peer address is taken from the flags
        "--force-new-cluster" if (data_dir / "member").exists() else "--initial-cluster-state=new",
    ]
    process = Managed("etcd", argv, log_dir)
    process.start()
    wait_until(lambda: _healthy(client_port), START_TIMEOUT_S, "etcd to be healthy", process)
    return Etcd(process, client_port)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return b'"true"' in response.read()
    except (OSError, urllib.error.HTTPError):
        return False
