-- queue_prefix_nodes: the nodes of the queue's Fenwick tree (queue_departures) whose sum is the
-- departures of ordinals 1 .. p_ordinal: p_ordinal, then each time with its lowest set bit cleared.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). At most 31 nodes (ordinals are below 2^31). plpgsql, not SQL, because a SQL
-- function that cannot be inlined is planned again at every call, which cost more than the lookups.

CREATE OR REPLACE FUNCTION queue_prefix_nodes(p_ordinal bigint) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    nodes bigint[] := '{}';
    node bigint := p_ordinal;
BEGIN
    WHILE node > 0 LOOP
        nodes := nodes || node;
        node := node & (node - 1);
    END LOOP;
    RETURN nodes;
END
$$;
