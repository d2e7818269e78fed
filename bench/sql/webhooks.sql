-- Webhook bench row (bench/webhooks.py): the outbox checked against the leads, per account.

-- name: bench_webhook_outbox_state
-- $1 account, $2 subscription created_at: outbox rows, rows not delivered yet, and leads written since the
-- subscription that have no lead_update row (must be 0: an acknowledged change always gets its event).
SELECT (SELECT count(*) FROM webhook_deliveries WHERE account_id = $1)::bigint AS rows,
       (SELECT count(*) FROM webhook_deliveries WHERE account_id = $1 AND status <> 'delivered')::bigint AS undelivered,
       (SELECT count(*) FROM leads l
        WHERE l.account_id = $1 AND l.created_at >= $2
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                          WHERE d.account_id = $1 AND d.event = 'lead_update'
                            AND d.data::jsonb ->> 'lead_id' = l.id::text))::bigint AS leads_without_event
