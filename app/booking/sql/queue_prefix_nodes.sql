-- queue_prefix_nodes: the nodes of the queue's Fenwick tree (queue_departures) whose sum is the
-- departures of ordinals 1 .. p_ordinal: one per set bit, p_ordinal with the bits below it cleared.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). The tree covers ordinals 1 .. 2^31 - 1, so at most 31 nodes.

CREATE OR REPLACE FUNCTION queue_prefix_nodes(p_ordinal bigint) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array(SELECT (p_ordinal >> j) << j FROM generate_series(0, 30) AS j
                  WHERE (p_ordinal >> j) & 1 = 1)
$$;
