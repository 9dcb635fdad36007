"""What every process tells the operator, whatever layer it runs: JSON log lines (logs.py) and the
Prometheus registry that adds up a multi-process server's metrics (metrics.py). Below every other layer,
so that the web tier and the background process both use it."""
