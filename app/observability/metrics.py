"""The registry that /metrics serves, in the web tier and in the background process alike."""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

# Where a multi-process server's workers keep their metrics, so that one scrape adds them up.
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def registry() -> CollectorRegistry:
    if not os.environ.get(MULTIPROC_DIR_VARIABLE):
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)  # reads every worker's files
    return combined
