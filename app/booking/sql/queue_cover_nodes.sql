-- queue_cover_nodes: the nodes of the queue's Fenwick tree (queue_departures) whose range contains
-- p_ordinal, which a departure at that ordinal adds to: p_ordinal, then each time plus its lowest set
-- bit; only those within the tree's current size, the smallest power of two that holds the `p_joined`
-- ordinals given so far (the chain reaches it, and the node after it is at least 2 * p_joined).
-- book_ticket grows the tree as the ordinals pass a power of two.
--
-- This file is the function's current definition (see app/database/functions.py for how a change
-- reaches the database). At most 1 + log2(p_joined) nodes: 5 in a queue of 10, 21 in one of a million.
-- plpgsql, not SQL, because a SQL function that cannot be inlined is planned again at every call.

CREATE OR REPLACE FUNCTION queue_cover_nodes(p_ordinal bigint, p_joined bigint) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    nodes bigint[] := '{}';
    node bigint := p_ordinal;
BEGIN
    WHILE node < 2 * p_joined LOOP
        nodes := nodes || node;
        node := node + (node & -node);
    END LOOP;
    RETURN nodes;
END
$$;
