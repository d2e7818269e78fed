-- Outgoing webhooks (issue 15, docs/WEBHOOKS.md): subscriptions, the outbox, the delivery worker, the log.
-- Subscription and log statements are scoped by account_id. The delivery worker's scan (webhook_due), the
-- metrics (webhook_queue_stats) and retention (webhook_prune) run for the whole cluster by design: one worker
-- delivers for every account; each of their per-row writes is scoped by account_id again.

-- name: webhooks_list
SELECT id, account_id, url, events, enabled, description, disabled_reason, created_at, updated_at
FROM webhooks
WHERE account_id = $1
ORDER BY created_at, id
LIMIT $2 OFFSET $3

-- name: webhook_get
SELECT id, account_id, url, events, enabled, description, disabled_reason, created_at, updated_at
FROM webhooks
WHERE id = $1 AND account_id = $2

-- name: webhook_create
-- $1 account, $2 url, $3 events, $4 secret, $5 enabled, $6 description.
INSERT INTO webhooks (account_id, url, events, secret, enabled, description)
VALUES ($1, $2, $3::text[], $4, $5, $6)
RETURNING id, account_id, url, events, secret, enabled, description, disabled_reason, created_at, updated_at

-- name: webhook_update
-- Partial: NULL keeps the column. Enabling clears the reason the server disabled it for.
UPDATE webhooks
SET url = COALESCE($3::text, url),
    events = COALESCE($4::text[], events),
    enabled = COALESCE($5::boolean, enabled),
    description = COALESCE($6::text, description),
    disabled_reason = CASE WHEN $5::boolean IS TRUE THEN '' ELSE disabled_reason END,
    updated_at = now()
WHERE id = $1 AND account_id = $2
RETURNING id, account_id, url, events, enabled, description, disabled_reason, created_at, updated_at

-- name: webhook_delete
-- Its deliveries go by FK CASCADE.
DELETE FROM webhooks WHERE id = $1 AND account_id = $2 RETURNING id

-- name: webhooks_account_enabled
-- Does the account have an enabled subscription? (cached per account by clarin.webhooks.outbox)
SELECT EXISTS (SELECT 1 FROM webhooks WHERE account_id = $1 AND enabled) AS enabled

-- name: webhook_outbox_insert
-- One row per (event, matching enabled subscription), in event order. $1 account; parallel arrays: $2 event ids,
-- $3 event names, $4 data (JSON text). Runs inside the writer's transaction where there is one.
WITH ins AS (
    INSERT INTO webhook_deliveries (account_id, webhook_id, event_id, event, data)
    SELECT $1, w.id, e.event_id, e.event, e.data
    FROM unnest($2::uuid[], $3::text[], $4::text[]) WITH ORDINALITY AS e(event_id, event, data, ord)
    CROSS JOIN LATERAL webhook_subscribers($1, e.event) AS w
    ORDER BY e.ord, w.id
    RETURNING 1
)
SELECT count(*)::int AS n FROM ins

-- name: webhook_ping_insert
-- POST /api/webhooks/:id/test: a `ping` queued behind the subscription's pending deliveries.
INSERT INTO webhook_deliveries (account_id, webhook_id, event_id, event, data)
SELECT w.account_id, w.id, gen_random_uuid(), 'ping', $3
FROM webhooks w
WHERE w.id = $1 AND w.account_id = $2
RETURNING id, event_id, event, status, status_code, attempts, next_attempt_at, last_error, duration_ms, occurred_at,
          last_attempt_at, delivered_at

-- name: webhook_due
-- Delivery worker (whole cluster): enabled subscriptions whose oldest pending delivery is due. One probe of
-- idx_webhook_deliveries_pending per enabled subscription.
SELECT w.id, w.account_id, w.url, w.secret
FROM webhooks w
CROSS JOIN LATERAL (
    SELECT d.next_attempt_at FROM webhook_deliveries d
    WHERE d.webhook_id = w.id AND d.status = 'pending'
    ORDER BY d.seq
    LIMIT 1
) h
WHERE w.enabled AND h.next_attempt_at <= now()
LIMIT $1

-- name: webhook_head
-- The next pending deliveries of one subscription, in order.
SELECT id, event_id, event, data, occurred_at, attempts, next_attempt_at, first_attempt_at
FROM webhook_deliveries
WHERE webhook_id = $1 AND account_id = $2 AND status = 'pending'
ORDER BY seq
LIMIT $3

-- name: webhook_mark_delivered
-- A batch of consecutive successes of one subscription. $1 account; parallel arrays: $2 delivery ids,
-- $3 status codes, $4 durations (ms).
UPDATE webhook_deliveries d
SET status = 'delivered', attempts = d.attempts + 1, status_code = u.status_code, last_error = '',
    duration_ms = u.duration_ms, first_attempt_at = COALESCE(d.first_attempt_at, now()), last_attempt_at = now(),
    delivered_at = now()
FROM unnest($2::uuid[], $3::int[], $4::float8[]) AS u(id, status_code, duration_ms)
WHERE d.id = u.id AND d.account_id = $1 AND d.status = 'pending'

-- name: webhook_mark_failed
-- $1 delivery, $2 account, $3 status code (NULL: no response), $4 error, $5 duration ms, $6 seconds until the
-- next attempt, $7 give up (status failed).
UPDATE webhook_deliveries
SET attempts = attempts + 1, status_code = $3, last_error = left($4, 500), duration_ms = $5,
    first_attempt_at = COALESCE(first_attempt_at, now()), last_attempt_at = now(),
    next_attempt_at = now() + make_interval(secs => $6::float8),
    status = CASE WHEN $7::boolean THEN 'failed' ELSE 'pending' END
WHERE id = $1 AND account_id = $2 AND status = 'pending'

-- name: webhook_disable
-- The server disables a subscription that failed for 24 h; returns nothing when it was already disabled.
UPDATE webhooks
SET enabled = false, disabled_reason = left($3, 500), updated_at = now()
WHERE id = $1 AND account_id = $2 AND enabled
RETURNING id

-- name: webhook_deliveries_list
-- The delivery log of one subscription, newest first. $1 webhook, $2 account, $3 limit, $4 offset.
SELECT id, event_id, event, status, status_code, attempts, next_attempt_at, last_error, duration_ms, occurred_at,
       last_attempt_at, delivered_at
FROM webhook_deliveries
WHERE webhook_id = $1 AND account_id = $2
ORDER BY seq DESC
LIMIT $3 OFFSET $4

-- name: webhook_redeliver
-- Queue one delivery again (any status) at its place in the subscription's order; the 24 h window restarts.
UPDATE webhook_deliveries
SET status = 'pending', next_attempt_at = now(), first_attempt_at = NULL, delivered_at = NULL
WHERE id = $1 AND webhook_id = $2 AND account_id = $3
RETURNING id, event_id, event, status, status_code, attempts, next_attempt_at, last_error, duration_ms, occurred_at,
          last_attempt_at, delivered_at

-- name: webhook_queue_stats
-- Metrics (whole cluster): pending deliveries and the age of the oldest, from idx_webhook_deliveries_pending_age.
SELECT count(*)::bigint AS depth,
       COALESCE(EXTRACT(EPOCH FROM now() - min(occurred_at)), 0)::float8 AS oldest_age
FROM webhook_deliveries
WHERE status = 'pending'

-- name: webhook_prune
-- Retention (whole cluster): one batch of deliveries delivered before $1; returns how many went.
WITH gone AS (
    DELETE FROM webhook_deliveries
    WHERE id IN (
        SELECT id FROM webhook_deliveries
        WHERE status = 'delivered' AND delivered_at < $1
        ORDER BY delivered_at
        LIMIT $2
    )
    RETURNING 1
)
SELECT count(*)::int AS n FROM gone
