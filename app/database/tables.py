"""The tables as SQLAlchemy Core sees them.

The alembic migrations are the schema's only source; this module mirrors them so that queries can be
built in Python, and `tests/integration/test_migrations.py` fails the moment the two disagree.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NOW = text("now()")
# A pending outbox message, as the claim's order probes ask for it (app/notifications/store.py, CLAIM).
PROBED_PENDING = "state NOT IN ('delivered', 'failed')"

# The items of a booking, or of what a ledger entry moved: one type's code per quantity, 1..20 of them.
ITEMS = (
    "(item_types IS NULL) = (item_quantities IS NULL) "
    "AND cardinality(item_types) BETWEEN 1 AND 20 AND cardinality(item_quantities) = cardinality(item_types)"
)

events = Table(
    "events",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()")),
    Column("name", Text),
    Column("total_tickets", Integer, nullable=False),
    Column("available_tickets", Integer, nullable=False),
    Column("waiting_count", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("max_per_booking", Integer, nullable=False, server_default=text("10")),
    Column("waiting_tickets", BigInteger, nullable=False, server_default=text("0")),
    # The queue's running totals, kept under the event lock (migration 0008, docs/performance.md): entries
    # and tickets ever queued, and those that left it from the head (promoted).
    Column("queue_joined_entries", BigInteger, nullable=False, server_default=text("0")),
    Column("queue_joined_tickets", BigInteger, nullable=False, server_default=text("0")),
    Column("queue_promoted_entries", BigInteger, nullable=False, server_default=text("0")),
    Column("queue_promoted_tickets", BigInteger, nullable=False, server_default=text("0")),
    # The organiser's (migration 0010): an event called off takes no more writes; closed sales take no booking.
    Column("status", Text, nullable=False, server_default=text("'active'")),
    Column("sales_open", Boolean, nullable=False, server_default=text("true")),
    # The order events were opened in (existing ones numbered by created_at), for the organisers' list.
    Column("seq", BigInteger, Identity(always=True), nullable=False),
    # How a freed ticket goes to the head of the queue (migration 0011): confirmed at once ('auto'), or
    # offered ('offer'), held for it for offer_ttl_seconds.
    Column("promotion", Text, nullable=False, server_default=text("'auto'")),
    Column("offer_ttl_seconds", Integer, nullable=False, server_default=text("86400")),
    # Checkout holds (migration 0018): how long a booking that gets tickets holds them for its payment
    # (NULL: no holds, they are confirmed at once), and the tickets in held bookings, kept under the lock.
    Column("hold_ttl_seconds", Integer),
    Column("held_tickets", Integer, nullable=False, server_default=text("0")),
    # Ticket types (migration 0019): how many the event has (ticket_types). With one, its bookings and
    # its type's counters follow from this row and nothing more is written; with several, each type
    # keeps its own counters and each booking its items.
    Column("ticket_type_count", SmallInteger, nullable=False, server_default=text("1")),
    # The fair sale opening (migration 0020): when the lobby is drawn (NULL: no lobby), the entries in it now,
    # and the draw's state under the lock: when the ranks were fixed, how many were drawn at random, the
    # ranks given (those, then late arrivals), the draw's cursor (ranks booked or passed over), when it was done.
    Column("sales_open_at", DateTime(timezone=True)),
    Column("lobby_count", Integer, nullable=False, server_default=text("0")),
    Column("draw_started_at", DateTime(timezone=True)),
    Column("draw_entries", Integer),
    Column("lobby_ranked", Integer, nullable=False, server_default=text("0")),
    Column("lobby_seated", Integer, nullable=False, server_default=text("0")),
    Column("drawn_at", DateTime(timezone=True)),
    CheckConstraint("total_tickets BETWEEN 1 AND 1000000", name="total_tickets_range"),
    CheckConstraint("available_tickets BETWEEN 0 AND total_tickets", name="available_tickets_range"),
    CheckConstraint("waiting_count >= 0", name="waiting_count_non_negative"),
    CheckConstraint("name IS NULL OR char_length(name) BETWEEN 1 AND 200", name="name_length"),
    CheckConstraint("max_per_booking BETWEEN 1 AND 100", name="max_per_booking_range"),
    CheckConstraint(
        "waiting_tickets BETWEEN waiting_count AND 100 * waiting_count::bigint", name="waiting_tickets_range"
    ),
    # With several types, an entry may wait while the event has room: one of its types has none.
    CheckConstraint(
        "waiting_count = 0 OR available_tickets < waiting_tickets OR ticket_type_count > 1",
        name="waiting_only_when_short",
    ),
    CheckConstraint(
        "queue_joined_entries BETWEEN 0 AND 2147483647 AND queue_joined_tickets >= queue_joined_entries",
        name="queue_joined_range",
    ),
    CheckConstraint(
        "queue_promoted_entries BETWEEN 0 AND queue_joined_entries - waiting_count "
        "AND queue_promoted_tickets BETWEEN queue_promoted_entries AND queue_joined_tickets - waiting_tickets",
        name="queue_promoted_range",
    ),
    CheckConstraint("status IN ('active', 'cancelled')", name="status_known"),
    CheckConstraint("promotion IN ('auto', 'offer')", name="promotion_known"),
    CheckConstraint("offer_ttl_seconds BETWEEN 1 AND 604800", name="offer_ttl_range"),
    CheckConstraint("hold_ttl_seconds BETWEEN 1 AND 86400", name="hold_ttl_range"),
    CheckConstraint("held_tickets BETWEEN 0 AND total_tickets - available_tickets", name="held_tickets_range"),
    CheckConstraint("ticket_type_count BETWEEN 1 AND 20", name="ticket_type_count_range"),
    CheckConstraint("lobby_count >= 0 AND lobby_seated BETWEEN 0 AND lobby_ranked", name="lobby_counts_range"),
    # The organisers' list, newest first, keyset-paginated (not unique: Citus, docs/scaling.md).
    Index("ix_events_seq", "seq"),
    Index("ix_events_status_seq", "status", "seq"),
    # The events whose draw is due or to come, for the lobby-draw unit (app/booking/lobby.py).
    Index(
        "ix_events_sales_open_at",
        "sales_open_at",
        postgresql_where=text("sales_open_at IS NOT NULL AND drawn_at IS NULL"),
    ),
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", Uuid, nullable=False, server_default=text("gen_random_uuid()")),
    # Monotonic under the event lock, so it orders the waiting list first-come-first-served. BY DEFAULT only
    # so that the draw (queue_lobby.sql) can hand its entries their new seqs from the sequence in rank order.
    Column("seq", BigInteger, Identity(always=False), nullable=False),
    Column("event_id", Uuid, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("quantity", Integer, nullable=False, server_default=text("1")),
    # Set when the booking joins the queue: its arrival rank among the event's entries ever queued, and
    # the tickets queued before it. Its place is these less what left ahead of it since (waiting_place).
    Column("queue_ordinal", BigInteger),
    Column("queue_tickets_before", BigInteger),
    # An offer's deadline (set when offered, kept as history), and why an offer was cancelled.
    Column("offer_expires_at", DateTime(timezone=True)),
    Column("cancel_reason", Text),
    # A hold's deadline (set when held, kept as history: a confirmed booking that has one was paid), and
    # the payment's reference that its confirm gave (migration 0018).
    Column("hold_expires_at", DateTime(timezone=True)),
    Column("payment_reference", Text),
    # Ticket types (migration 0019): on an event with several, the codes of the types it holds (or wants),
    # the quantity of each, and, once queued, the tickets of each type queued before it (its place in
    # that type's queue, as queue_tickets_before is in the event's). NULL on an event of one type: all of
    # `quantity` is of that type. `quantity` stays the booking's total.
    Column("item_types", ARRAY(Text)),
    Column("item_quantities", ARRAY(Integer)),
    Column("item_tickets_before", ARRAY(BigInteger)),
    # A lobby entry's rank in the draw, set when the draw books it (migration 0020).
    Column("lobby_rank", Integer),
    # event_id first: sharded by event (docs/scaling.md), a key must contain the distribution column.
    PrimaryKeyConstraint("event_id", "id"),
    CheckConstraint("status IN ('confirmed', 'waiting', 'offered', 'held', 'cancelled', 'lobby')", name="status_known"),
    CheckConstraint("char_length(user_id) BETWEEN 1 AND 128", name="user_id_length"),
    CheckConstraint("quantity BETWEEN 1 AND 100", name="quantity_range"),
    CheckConstraint(
        "status <> 'waiting' OR (queue_ordinal IS NOT NULL AND queue_tickets_before IS NOT NULL)",
        name="waiting_has_a_place",
    ),
    CheckConstraint(
        "queue_ordinal BETWEEN 1 AND 2147483647 AND queue_tickets_before >= queue_ordinal - 1",
        name="queue_place_range",
    ),
    CheckConstraint("status <> 'offered' OR offer_expires_at IS NOT NULL", name="offer_has_expiry"),
    CheckConstraint(
        "cancel_reason IS NULL OR (status = 'cancelled' AND cancel_reason IN ('declined', 'expired', 'hold_expired'))",
        name="cancel_reason_known",
    ),
    CheckConstraint("status <> 'held' OR hold_expires_at IS NOT NULL", name="hold_has_expiry"),
    CheckConstraint("char_length(payment_reference) BETWEEN 1 AND 128", name="payment_reference_length"),
    CheckConstraint(ITEMS, name="items_match"),
    CheckConstraint("cardinality(item_tickets_before) = cardinality(item_types)", name="item_places_match"),
    CheckConstraint("lobby_rank >= 1", name="lobby_rank_range"),
    Index(
        "uq_bookings_one_active_per_user",
        "event_id",
        "user_id",
        unique=True,
        postgresql_where=text("status <> 'cancelled'"),
    ),
    Index("ix_bookings_waiting_queue", "event_id", "seq", postgresql_where=text("status = 'waiting'")),
    Index("ix_bookings_user_history", "event_id", "user_id", "seq"),
    # A user's bookings across events, newest first (GET /api/users/<userId>/bookings).
    Index("ix_bookings_user_bookings", "user_id", "seq"),
    Index("ix_bookings_event_id_seq", "event_id", "seq"),  # an event's bookings in order, for its organiser
    # The offers by deadline, for the sweeper (expire_offers).
    Index("ix_bookings_offer_expires_at", "offer_expires_at", postgresql_where=text("status = 'offered'")),
    # The holds by deadline, for their sweeper (expire_holds).
    Index("ix_bookings_hold_expires_at", "hold_expires_at", postgresql_where=text("status = 'held'")),
    # The waiting entries of events with several types, by quantity: "does any want more than the event
    # has left?" in one probe (book_ticket); an event of one type has none here, so its path pays nothing.
    Index(
        "ix_bookings_waiting_items",
        "event_id",
        "quantity",
        postgresql_where=text("status = 'waiting' AND item_types IS NOT NULL"),
    ),
)

# An event's ticket types (migration 0019), by position: the order they were added, 1 the first. Every
# event has one at least (`standard`, holding its total, unless it was opened with types of its own: the
# trigger add_standard_ticket_type). The counters are kept under the event lock, and only while the event
# has several types; with one, they follow from the event row (taken: total - available; waiting: its
# waiting_tickets).
ticket_types = Table(
    "ticket_types",
    metadata,
    Column("event_id", Uuid, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("position", SmallInteger, nullable=False),
    Column("code", Text, nullable=False),
    Column("name", Text),
    Column("total_tickets", Integer, nullable=False),
    Column("max_per_booking", Integer),  # NULL: the event's
    # Tickets of this type in confirmed, offered and held bookings; wanted by waiting entries; ever queued
    # (an item's place in this type's queue is counted from it).
    Column("taken_tickets", Integer, nullable=False, server_default=text("0")),
    Column("waiting_tickets", BigInteger, nullable=False, server_default=text("0")),
    Column("queue_joined_tickets", BigInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("event_id", "position"),
    UniqueConstraint("event_id", "code"),
    CheckConstraint("position BETWEEN 1 AND 20", name="position_range"),
    CheckConstraint("code ~ '^[a-z0-9][a-z0-9-]{0,31}$'", name="code_format"),
    CheckConstraint("char_length(name) BETWEEN 1 AND 200", name="name_length"),
    CheckConstraint(
        "taken_tickets BETWEEN 0 AND total_tickets AND total_tickets <= 1000000", name="taken_tickets_range"
    ),
    CheckConstraint("max_per_booking BETWEEN 1 AND 100", name="max_per_booking_range"),
    CheckConstraint("waiting_tickets >= 0 AND queue_joined_tickets >= waiting_tickets", name="queue_counts_range"),
)

# The ledger: one row per state change, appended by the booking functions in the same transaction.
booking_events = Table(
    "booking_events",
    metadata,
    # Assigned under the event lock, so it orders an event's rows as its changes happened.
    Column("seq", BigInteger, Identity(always=True), nullable=False),
    Column("event_id", Uuid, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    # NULL on an organiser's entry (event_updated, capacity_changed, sales_closed, sales_opened,
    # event_cancelled), which concerns the event; the bookings it touched follow it under the same request id.
    Column("booking_id", Uuid),
    Column("user_id", Text),
    Column("kind", Text, nullable=False),
    Column("request_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    # The tickets the change concerns: those booked, queued or promoted; for `cancelled` and `reduced`
    # (a partial cancel), those given up.
    Column("quantity", Integer),
    # capacity_changed's totals before and after, so that a replay of the ledger follows the capacity;
    # type_added's (from 0) and type_changed's, of the type `ticket_type` names (its code).
    Column("total_tickets_from", Integer),
    Column("total_tickets_to", Integer),
    # Ticket types (migration 0019): on an event with several, the items a booking's entry moved (booked,
    # queued, given up, promoted...); NULL on an event of one type (all of `quantity` is of that type).
    Column("item_types", ARRAY(Text)),
    Column("item_quantities", ARRAY(Integer)),
    Column("ticket_type", Text),
    # The rank of a lobby entry that the draw books, on its booked / held / waitlisted entry (migration 0020).
    Column("lobby_rank", Integer),
    # event_id first, as in bookings; its index also serves an event's history, oldest first.
    PrimaryKeyConstraint("event_id", "seq"),
    CheckConstraint(
        "kind IN ('booked', 'waitlisted', 'cancelled', 'reduced', 'promoted', "
        "'capacity_changed', 'sales_closed', 'sales_opened', 'event_cancelled', 'event_updated', "
        "'offered', 'accepted', 'declined', 'expired', 'held', 'paid', 'hold_expired', 'type_added', 'type_changed', "
        "'lobby', 'lobby_drawn')",
        name="kind_known",
    ),
    CheckConstraint(
        "CASE WHEN kind IN ('capacity_changed', 'sales_closed', 'sales_opened', 'event_cancelled', 'event_updated', "
        "'type_added', 'type_changed', 'lobby_drawn') "
        "THEN booking_id IS NULL AND user_id IS NULL AND quantity IS NULL "
        "ELSE booking_id IS NOT NULL AND user_id IS NOT NULL AND quantity IS NOT NULL END",
        name="subject_known",
    ),
    CheckConstraint(
        "(kind IN ('capacity_changed', 'type_added', 'type_changed')) = (total_tickets_from IS NOT NULL) "
        "AND (total_tickets_from IS NULL) = (total_tickets_to IS NULL)",
        name="totals_with_capacity_change",
    ),
    CheckConstraint("quantity BETWEEN 1 AND 100", name="quantity_range"),
    CheckConstraint(ITEMS, name="items_match"),
    CheckConstraint(
        "(kind IN ('type_added', 'type_changed')) = (ticket_type IS NOT NULL)", name="type_change_names_it"
    ),
    CheckConstraint("lobby_rank >= 1", name="lobby_rank_range"),
)

# The draw's ranks (migration 0020): each rank given at an event, and the lobby entry it went to; fixed before
# the draw books anyone (rank_lobby), or as a late arrival joins (join_lobby).
lobby_ranks = Table(
    "lobby_ranks",
    metadata,
    Column("event_id", Uuid, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("booking_id", Uuid, nullable=False),
    PrimaryKeyConstraint("event_id", "rank"),
    CheckConstraint("rank >= 1", name="rank_range"),
)

# Who left the queue other than from its head (a waiting entry cancelled, or shrunk by a partial
# cancel), as a Fenwick tree over queue ordinals: node n sums the departures of the ordinals
# n - lowbit(n) + 1 .. n, so what left ahead of a place is a sum of at most 31 nodes. One tree per
# `ticket_type` (migration 0019): 0 the event's (entries and tickets); on an event with several types, k
# the tickets of type position k, and a promotion (which may pass older entries) counts as a departure.
queue_departures = Table(
    "queue_departures",
    metadata,
    Column("event_id", Uuid, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("ticket_type", SmallInteger, nullable=False, server_default=text("0")),
    Column("node", BigInteger, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("tickets", BigInteger, nullable=False),
    PrimaryKeyConstraint("event_id", "ticket_type", "node"),
    CheckConstraint("node BETWEEN 1 AND 2147483648", name="node_range"),
    CheckConstraint("entries >= 0 AND tickets >= entries", name="counts_range"),
    CheckConstraint("ticket_type BETWEEN 0 AND 20", name="ticket_type_range"),
)

# Idempotency-Key: the first response to each key, written in the transaction of its effect.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", Text, primary_key=True),
    Column("fingerprint", Text, nullable=False),  # sha256 of method, path and canonical body
    # NULL only inside the transaction that inserted the row: it commits with the response.
    Column("status", SmallInteger),
    Column("headers", JSONB),
    Column("body", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    CheckConstraint("char_length(key) BETWEEN 1 AND 255", name="key_length"),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

# Webhooks (app/notifications): the registrations; the secret only as ciphertext (app/notifications/secrets.py).
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()")),
    Column("seq", BigInteger, Identity(always=True), nullable=False),  # the listing's keyset cursor
    Column("url", Text, nullable=False),
    Column("types", ARRAY(Text)),  # NULL: every type
    # NULL: every event. No foreign key: a reference table under Citus may not refer to events (0009).
    Column("event_id", Uuid),
    Column("secret_ciphertext", LargeBinary, nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
    Column("disabled_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    UniqueConstraint("seq"),
)

# The outbox: one message per (change, webhook), written by a trigger on booking_events in the change's
# transaction (migration 0009), and its delivery state.
webhook_messages = Table(
    "webhook_messages",
    metadata,
    Column("seq", BigInteger, Identity(always=True), nullable=False),
    Column("message_id", Uuid, nullable=False, server_default=text("gen_random_uuid()")),
    Column("webhook_id", Uuid, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("ledger_seq", BigInteger, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("booking_id", Uuid),
    Column("type", Text, nullable=False),
    # The bookings row as the change left it, plus waiting_position; NULL on an event's message
    # (event.updated, event.cancelled), as booking_id is.
    Column("booking", JSONB),
    Column("event", JSONB, nullable=False),  # the events row as the change left it
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("state", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_status", SmallInteger),  # the receiver's HTTP status; NULL when no answer came
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("lease_until", DateTime(timezone=True)),  # claimed by a dispatcher until then
    Column("delivered_at", DateTime(timezone=True)),
    # event_id first, as in booking_events: sharded, an event's messages live beside its ledger.
    PrimaryKeyConstraint("event_id", "seq"),
    CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state_known"),
    Index("ix_webhook_messages_webhook_id_seq", "webhook_id", "seq"),
    Index("ix_webhook_messages_webhook_id_message_id", "webhook_id", "message_id"),
    # What is left to send, by webhook and booking: the claim's per-booking order. "Not delivered nor
    # failed" is pending, spelled so that only the claim's probes can use this index and the next one,
    # and never the queue's below (migration 0016).
    Index(
        "ix_webhook_messages_pending",
        "webhook_id",
        "booking_id",
        "ledger_seq",
        postgresql_where=text(PROBED_PENDING),
    ),
    # An event's messages left to send (event.updated, event.cancelled: no booking): the per-event order,
    # one exact probe however many other events' messages wait.
    Index(
        "ix_webhook_messages_pending_event",
        "webhook_id",
        "event_id",
        "ledger_seq",
        postgresql_where=text(f"{PROBED_PENDING} AND booking_id IS NULL"),
    ),
    # A webhook's queue in the order of the changes: the claim reads it from the front, an index scan
    # whatever the backlog (without it, each claim sorted every pending message: 10 ms at 8 000).
    Index("ix_webhook_messages_queue", "webhook_id", "ledger_seq", postgresql_where=text("state = 'pending'")),
    # What is due, by webhook: the dispatchers' poll stays an index probe however long the backlog.
    Index("ix_webhook_messages_due", "webhook_id", "next_attempt_at", postgresql_where=text("state = 'pending'")),
    Index("ix_webhook_messages_delivered_at", "delivered_at", postgresql_where=text("state = 'delivered'")),
)

# One row per running dispatcher, touched on every loop: its health, as the database sees it.
webhook_dispatchers = Table(
    "webhook_dispatchers",
    metadata,
    Column("name", Text, primary_key=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)
