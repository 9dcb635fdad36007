"""The dispatcher's metrics (prometheus-client).

The dispatcher is a process of its own. Under `make run` it inherits PROMETHEUS_MULTIPROC_DIR, so its
values land beside gunicorn's workers' and the API's /metrics adds them in (app/web/metrics.py). Run
alone, it serves them on its own port (WEBHOOK_DISPATCHER_PORT, app/workers/__main__.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DELIVERED = Counter("webhook_messages_delivered_total", "Webhook messages a receiver accepted (2xx)")
RETRIED = Counter("webhook_messages_retried_total", "Webhook tries that failed and were scheduled again")
FAILED = Counter("webhook_messages_failed_total", "Webhook messages given up after their last try, or on 410")
LAG = Gauge(
    "webhook_oldest_pending_message_age_seconds",
    "Age of the oldest message not yet delivered to an enabled webhook",
    multiprocess_mode="livemax",
)
LAST_LOOP = Gauge(
    "webhook_dispatcher_last_loop_timestamp_seconds",
    "When a dispatcher last completed a loop against the database",
    multiprocess_mode="livemax",
)
IN_FLIGHT = Gauge("webhook_sends_in_flight", "Webhook sends waiting for their receiver", multiprocess_mode="livesum")
