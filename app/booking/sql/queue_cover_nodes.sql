-- queue_cover_nodes: the nodes of the queue's Fenwick tree (queue_departures) whose range contains
-- p_ordinal, which a departure at that ordinal adds to: one per clear bit j of p_ordinal - 1, the node
-- whose lowest set bit is 2^j.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). The tree covers ordinals 1 .. 2^31 - 1, so at most 31 nodes.

CREATE OR REPLACE FUNCTION queue_cover_nodes(p_ordinal bigint) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array(SELECT (((p_ordinal - 1) >> j) << j) + (1::bigint << j) FROM generate_series(0, 30) AS j
                  WHERE ((p_ordinal - 1) >> j) & 1 = 0)
$$;
