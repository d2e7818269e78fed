-- Which enabled webhook subscriptions of an account receive an event: the one rule every statement that writes
-- webhook outbox rows joins (webhook_outbox_insert, leads_create, campaigns_start_due, campaigns_fail_logged_out),
-- kept here instead of repeated in each. A single-SELECT SQL function, STABLE: the planner inlines it into the
-- caller's FROM (CROSS JOIN LATERAL webhook_subscribers(...)), so the join is planned as if written out.
CREATE FUNCTION webhook_subscribers(p_account uuid, p_event text) RETURNS TABLE (id uuid)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT w.id
    FROM webhooks w
    WHERE w.account_id = p_account AND w.enabled AND (p_event = ANY (w.events) OR '*' = ANY (w.events))
$$;
