-- promotion_terms: what the head of the queue gets when freed tickets reach it at `p_changed_at`, for an
-- event whose promotion is `p_promotion`, with `p_offer_ttl_seconds` and `p_hold_ttl_seconds` (NULL: no
-- holds): in offer mode it is `offered` until the offer's deadline (issue 16); else, with holds on, `held`
-- until the hold's deadline, waiting for its payment (issue 25); else `confirmed`, with no deadline. The
-- one place that says what the event's settings mean to the functions that promote.

CREATE OR REPLACE FUNCTION promotion_terms(p_promotion text, p_offer_ttl_seconds integer, p_hold_ttl_seconds integer,
                                           p_changed_at timestamptz, OUT status text, OUT expires_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_promotion = 'offer' THEN 'offered'
                WHEN p_hold_ttl_seconds IS NOT NULL THEN 'held'
                ELSE 'confirmed' END,
           p_changed_at + make_interval(secs => CASE WHEN p_promotion = 'offer' THEN p_offer_ttl_seconds
                                                     ELSE p_hold_ttl_seconds END)
$$;
