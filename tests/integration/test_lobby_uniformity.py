"""The draw's order is uniformly random (issue 27): over DRAWS draws of a lobby of ENTRIES entries, each entry
lands at each rank about equally often.

The test: for each entry, a chi-square test of its rank's counts (ENTRIES ranks, ENTRIES - 1 degrees of
freedom) against the uniform DRAWS / ENTRIES per rank. It fails if any entry's p-value is below ALPHA.
With a uniform draw each entry's p-value is uniform on [0, 1], so the test fails by chance with probability
at most ENTRIES * ALPHA = 5e-5: once in 20 000 runs. It runs the real draw: draw_lobby's ranking step, the
one the lobby-draw unit runs, each draw in a transaction rolled back afterwards (about 1 ms a draw here).

Its power is shown on a shuffle that is almost right: arrival order with a random jitter of up to two
places, which the same test refuses.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from sqlalchemy import text

from tests.helpers.lobby import OPEN_NOW, later

ENTRIES, DRAWS = 5, 2000
ALPHA = 1e-5  # per entry; ENTRIES * ALPHA for the test as a whole
RANKS = text("SELECT r.booking_id, r.rank FROM lobby_ranks r WHERE r.event_id = :event_id")
RANK_STEP = text("SELECT ranked FROM draw_lobby(:event_id, 'uniformity', 1)")


def chi_square_p_value(statistic: float, freedom: int) -> float:
    """P(X >= statistic) for X chi-square with an even number of degrees of freedom (closed form)."""
    half = statistic / 2
    return math.exp(-half) * sum(half**k / math.factorial(k) for k in range(freedom // 2))


def rank_p_values(orders: list[list]) -> dict:
    """Each entry's chi-square p-value for the uniformity of its rank over `orders` (each a list of entries)."""
    counts = {entry: Counter() for entry in orders[0]}
    for order in orders:
        for rank, entry in enumerate(order):
            counts[entry][rank] += 1
    expected = len(orders) / len(counts)
    return {
        entry: chi_square_p_value(
            sum((ranks[rank] - expected) ** 2 / expected for rank in range(len(counts))), len(counts) - 1
        )
        for entry, ranks in counts.items()
    }


@pytest.fixture
def five_in_the_lobby(new_event, client):
    event = new_event(ENTRIES, salesOpenAt=later())
    for number in range(ENTRIES):
        assert client.post("/api/book", json={"eventId": event["id"], "userId": f"user-{number}"}).status_code == 201
    return event["id"]


def real_draws(engine, event_id: str) -> list[list]:
    """DRAWS orders of the event's lobby by the draw's own ranking, each rolled back after it is read."""
    orders = []
    with engine.connect() as conn:
        for _ in range(DRAWS):
            with conn.begin() as transaction:
                conn.execute(OPEN_NOW, {"event_id": event_id})
                assert conn.execute(RANK_STEP, {"event_id": event_id}).scalar_one() == ENTRIES
                ranked = sorted(conn.execute(RANKS, {"event_id": event_id}), key=lambda row: row.rank)
                orders.append([row.booking_id for row in ranked])
                transaction.rollback()
    return orders


def test_the_chi_square_p_value_matches_known_quantiles():
    assert chi_square_p_value(9.487729, 4) == pytest.approx(0.05, rel=1e-5)
    assert chi_square_p_value(13.276704, 4) == pytest.approx(0.01, rel=1e-5)


def test_each_entry_is_drawn_at_each_rank_equally_often(engine, five_in_the_lobby):
    p_values = rank_p_values(real_draws(engine, five_in_the_lobby))

    assert min(p_values.values()) >= ALPHA, p_values


def test_the_same_test_refuses_arrival_order_with_a_small_random_jitter():
    jitter = random.Random(27)
    arrivals = list(range(ENTRIES))
    orders = [sorted(arrivals, key=lambda arrival: arrival + jitter.uniform(0, 2)) for _ in range(DRAWS)]

    assert min(rank_p_values(orders).values()) < ALPHA
