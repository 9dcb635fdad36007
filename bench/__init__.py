"""`make bench`: hot-event booking throughput over HTTP, beside the PostgreSQL ceiling (pgbench).

See docs/performance.md for the model behind the scenarios and what the figures mean.
"""
