-- offer_deadline: when an offer made at `p_changed_at` expires, for an event whose promotion is
-- `p_promotion` with `p_offer_ttl_seconds`; NULL in auto mode, where promotion confirms at once. The
-- one place that says what offer mode means to the functions that promote (issue 16).

CREATE OR REPLACE FUNCTION offer_deadline(p_promotion text, p_offer_ttl_seconds integer, p_changed_at timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_promotion = 'offer' THEN p_changed_at + make_interval(secs => p_offer_ttl_seconds) END
$$;
