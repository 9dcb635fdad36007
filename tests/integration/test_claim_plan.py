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


def probe_scans(node: dict, in_probe: bool = False) -> list[tuple[str, str]]:
    """(index name, index condition) of every index scan in the subqueries (SubPlans) of a JSON plan node."""
    in_probe = in_probe or node.get("Parent Relationship") == "SubPlan"
    scans = [(node["Index Name"], node.get("Index Cond", ""))] if in_probe and "Index Name" in node else []
    for child in node.get("Plans", []):
        scans += probe_scans(child, in_probe)
    return scans


def test_the_order_probes_stay_exact_on_statistics_that_say_nothing_is_pending(
    engine, config, new_event, webhooks_removed_afterwards
):
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

    root = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
    assert "Anti Join" not in json.dumps(root)  # each rule a probe per candidate, never a join
    assert sorted(probe_scans(root)) == [
        (
            "ix_webhook_messages_pending",
            "((webhook_id = m.webhook_id) AND (booking_id = m.booking_id) AND (ledger_seq < m.ledger_seq))",
        ),
        (
            "ix_webhook_messages_pending_event",
            "((webhook_id = m.webhook_id) AND (event_id = m.event_id) AND (ledger_seq < m.ledger_seq))",
        ),
    ]
