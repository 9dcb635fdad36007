"""hot-jwt's identity provider: an RS256 key the bench makes, published as a JWK set on loopback (the
cluster's JwksServer, cluster/jwks.py), and pools of tokens signed with it that wrk reads from files.

Each token is for its own `sub`, j-<thread>-<k>, so that every request books as a new user, as in hot.
One pool per wrk thread (tokens-<thread>.txt, one token a line), sized for TOKENS_PER_S_BUDGET over
the longest wrk run; each measured run books on fresh events, so the pools serve every run. A thread
that used up its pool starts it again, and the repeated users then show as errors (409), not silently.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from app.operations import dev_keys
from cluster.jwks import JwksServer

# Requests per second the token pools cover: above hot's open-mode rate on this machine (~1 500).
TOKENS_PER_S_BUDGET = 2000
TOKEN_TTL_S = 86400  # longer than any bench run


class BenchIdentity:
    """For the length of a `with`: the JWKS server and, in `directory`, the key and the token pools."""

    def __init__(self, threads: int, longest_run_s: int) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-jwt-")
        self.directory = Path(self._tmp.name)
        self.threads = threads
        self.tokens_per_thread = math.ceil(TOKENS_PER_S_BUDGET * longest_run_s / threads)
        self.jwks = JwksServer(self.directory)  # makes the key under `directory`

    def __enter__(self) -> BenchIdentity:
        self._write_pools()
        self.jwks.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.jwks.stop()
        self._tmp.cleanup()

    def server_env(self) -> dict[str, str]:
        """What gunicorn needs to run in jwt mode, trusting this provider."""
        return self.jwks.instance_env()

    def _write_pools(self) -> None:
        started = time.monotonic()
        sign = dev_keys.signer(self.directory)
        for thread in range(1, self.threads + 1):
            tokens = (
                sign(dev_keys.claims(f"j-{thread}-{k}", ttl_s=TOKEN_TTL_S))
                for k in range(1, self.tokens_per_thread + 1)
            )
            (self.directory / f"tokens-{thread}.txt").write_text("\n".join(tokens) + "\n")
        print(
            f"  signed {self.threads} x {self.tokens_per_thread} RS256 tokens for hot-jwt in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
