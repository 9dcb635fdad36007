"""The claim's order probes, as PostgreSQL plans them on the statistics a queue table usually has."""

import json

from sqlalchemy import text

from app.notifications.store import CLAIM
from tests.helpers.webhooks import add_webhook

BOOK_MANY = text("""
SELECT count(*) FROM book_many(:event_id, ARRAY(SELECT 'user-' || n FROM generate_series(1, 300) n),
                               array_fill(NULL::text, ARRAY[300]))
""")
SET_STATE = text("UPDATE webhook_messages SET state = :state WHERE webhook_id = :id")


def index_scans(node: dict) -> list[tuple[str, str]]:
    """(index name, index condition) of every index scan in a JSON plan node and below it."""
    scans = [(node["Index Name"], node.get("Index Cond", ""))] if "Index Name" in node else []
    for child in node.get("Plans", []):
        scans += index_scans(child)
    return scans


def test_the_order_probes_stay_exact_on_statistics_that_say_nothing_is_pending(engine, config, new_event,
                                                                              webhooks_removed_afterwards):
    event = new_event(300)
    webhook_id = add_webhook(engine, config, event["id"])
    with engine.begin() as conn:
        conn.execute(BOOK_MANY, {"event_id": event["id"]})
        conn.execute(SET_STATE, {"state": "delivered", "id": webhook_id})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE webhook_messages"))  # statistics taken while nothing was pending
    with engine.connect() as conn:  # all pending again, as at the start of a sale; rolled back afterwards
        conn.execute(SET_STATE, {"state": "pending", "id": webhook_id})
        explain = text("EXPLAIN (FORMAT JSON) " + CLAIM.text)
        plan = conn.execute(explain, {"webhook_id": webhook_id, "limit": 64, "lease_s": 30}).scalar_one()
        conn.rollback()

    scans = index_scans((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
    probes = [condition for name, condition in scans if name == "ix_webhook_messages_pending"]
    assert "ix_webhook_messages_due" not in {name for name, _ in scans}
    assert probes and all("booking_id" in condition and "ledger_seq" in condition for condition in probes)
