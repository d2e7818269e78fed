-- Scheduled single messages (clarin/messaging/scheduled.py, scheduled_sender.py; 0017_scheduled_messages.sql).
-- Route statements are scoped by $1 = account_id. The sender's statements run for the devices this process
-- runs (device ids, each owned by exactly one account) and are served by the partial indexes on device_id.

-- name: scheduled_insert
-- Only for a device of the account: no row back means the device is unknown or foreign (404).
INSERT INTO scheduled_messages AS s (account_id, device_id, chat_id, to_jid, body, send_at, created_by)
SELECT $1, d.id, $3::uuid, $4::varchar, $5::text, $6::timestamptz, $7::uuid
FROM devices d
WHERE d.id = $2 AND d.account_id = $1
RETURNING s.id, s.device_id, s.chat_id, s.to_jid, s.body, s.send_at, s.status, s.attempts, s.sent_at,
          s.sent_message_id, s.error_message, s.created_at, s.updated_at

-- name: scheduled_chat
SELECT c.id, c.jid
FROM chats c
WHERE c.account_id = $1 AND c.id = $2

-- name: scheduled_get
SELECT s.id, s.device_id, s.chat_id, s.to_jid, s.body, s.send_at, s.status, s.attempts, s.sent_at,
       s.sent_message_id, s.error_message, s.created_at, s.updated_at
FROM scheduled_messages s
WHERE s.account_id = $1 AND s.id = $2

-- name: scheduled_page
-- Soonest first (idx_scheduled_messages_account); $2 limit (capped by the caller), $3 offset.
SELECT s.id, s.device_id, s.chat_id, s.to_jid, s.body, s.send_at, s.status, s.attempts, s.sent_at,
       s.sent_message_id, s.error_message, s.created_at, s.updated_at
FROM scheduled_messages s
WHERE s.account_id = $1
ORDER BY s.send_at, s.id
LIMIT $2 OFFSET $3

-- name: scheduled_page_status
-- ?status= ($2), soonest first (idx_scheduled_messages_account_status); $3 limit, $4 offset.
SELECT s.id, s.device_id, s.chat_id, s.to_jid, s.body, s.send_at, s.status, s.attempts, s.sent_at,
       s.sent_message_id, s.error_message, s.created_at, s.updated_at
FROM scheduled_messages s
WHERE s.account_id = $1 AND s.status = $2
ORDER BY s.send_at, s.id
LIMIT $3 OFFSET $4

-- name: scheduled_count
-- The list's total, counted up to $2 rows (TOTAL_COUNT_CAP + 1, clarin.http.totals): an index-only walk that stops.
SELECT count(*) AS total
FROM (SELECT 1 FROM scheduled_messages s WHERE s.account_id = $1 LIMIT $2) AS capped

-- name: scheduled_count_status
SELECT count(*) AS total
FROM (SELECT 1 FROM scheduled_messages s WHERE s.account_id = $1 AND s.status = $2 LIMIT $3) AS capped

-- name: scheduled_update
-- Edit while pending only ($3 body, $4 send_at, $5 to_jid: NULL = unchanged; with a new to_jid the chat becomes
-- $6, NULL when it was given as `to`). No row back: unknown, foreign or no longer pending (the caller tells 404
-- from 409 with scheduled_get).
UPDATE scheduled_messages s
SET body = COALESCE($3::text, s.body),
    send_at = COALESCE($4::timestamptz, s.send_at),
    to_jid = COALESCE($5::varchar, s.to_jid),
    chat_id = CASE WHEN $5::varchar IS NULL THEN s.chat_id ELSE $6::uuid END,
    updated_at = now()
WHERE s.account_id = $1 AND s.id = $2 AND s.status = 'pending'
RETURNING s.id, s.device_id, s.chat_id, s.to_jid, s.body, s.send_at, s.status, s.attempts, s.sent_at,
          s.sent_message_id, s.error_message, s.created_at, s.updated_at

-- name: scheduled_cancel
UPDATE scheduled_messages s
SET status = 'cancelled', updated_at = now()
WHERE s.account_id = $1 AND s.id = $2 AND s.status = 'pending'
RETURNING s.id, s.device_id, s.chat_id, s.to_jid, s.body, s.send_at, s.status, s.attempts, s.sent_at,
          s.sent_message_id, s.error_message, s.created_at, s.updated_at

-- name: scheduled_claim_due
-- The sender claims due rows of the devices it runs ($1) and may send through now: 'sending' before anything goes
-- out, a new attempt number (the attempt's Idempotency-Key). SKIP LOCKED: two claimers never get the same row.
WITH due AS (
    SELECT s.id
    FROM scheduled_messages s
    WHERE s.device_id = ANY($1::uuid[]) AND s.status = 'pending' AND s.send_at <= now()
    ORDER BY s.send_at, s.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE scheduled_messages s
SET status = 'sending', attempts = s.attempts + 1, claimed_at = now(), error_message = NULL, updated_at = now()
FROM due
WHERE s.id = due.id AND s.status = 'pending'
RETURNING s.id, s.account_id, s.device_id, s.to_jid, s.body, s.send_at, s.attempts

-- name: scheduled_unclaim
-- Nothing was handed to WhatsApp (device unavailable, over budget): pending again, send_at unchanged.
UPDATE scheduled_messages s
SET status = 'pending', claimed_at = NULL, updated_at = now()
WHERE s.id = ANY($1::uuid[]) AND s.status = 'sending'

-- name: scheduled_finish
-- The claimer's result ($3 'sent' | 'failed'), only while the row is still this attempt's ($2) claim: a row a
-- reconcile settled meanwhile is left alone (nothing comes back).
UPDATE scheduled_messages s
SET status = $3::varchar, sent_at = CASE WHEN $3::varchar = 'sent' THEN now() END,
    sent_message_id = $4::uuid, chat_id = COALESCE($5::uuid, s.chat_id), error_message = $6::text,
    updated_at = now()
WHERE s.id = $1 AND s.attempts = $2 AND s.status = 'sending'
RETURNING s.id, s.account_id, s.device_id, s.chat_id, s.to_jid, s.body, s.send_at, s.status, s.attempts,
          s.sent_at, s.sent_message_id, s.error_message, s.created_at, s.updated_at

-- name: scheduled_next_due
-- The earliest pending send_at among the devices ($1): one index probe per device (idx_scheduled_messages_due).
SELECT min(n.send_at) AS next_at
FROM unnest($1::uuid[]) AS d(id)
CROSS JOIN LATERAL (
    SELECT s.send_at FROM scheduled_messages s
    WHERE s.device_id = d.id AND s.status = 'pending'
    ORDER BY s.send_at
    LIMIT 1
) n

-- name: scheduled_sending_on_device
-- Reconcile (only while holding the device's scheduled-send lock, so no live process is sending them): rows left
-- 'sending', each with what its attempt's Idempotency-Key says: the outgoing message outbound linked to it before
-- calling the driver (and that row, if it is still there), or the answer a refused send left.
SELECT s.id, s.account_id, s.attempts, s.claimed_at,
       k.key IS NOT NULL AS key_found, k.message_id AS linked_id, k.status_code, k.body AS answer,
       m.id AS message_row, m.chat_id AS message_chat, m."timestamp" AS message_at
FROM scheduled_messages s
LEFT JOIN idempotency_keys k
       ON k.account_id = s.account_id AND k.key = 'clarin-scheduled:' || s.id::text || ':' || s.attempts::text
LEFT JOIN messages m ON m.id = k.message_id AND m.account_id = s.account_id
WHERE s.device_id = $1 AND s.status = 'sending'

-- name: scheduled_reconcile
-- Settle reconciled rows in one statement: $1 ids, $2 statuses ('sent' | 'failed' | 'pending' = never handed to
-- WhatsApp, sent at the next scan), $3 errors, $4 sent message ids, $5 chats, $6 sent_at.
WITH input AS (
    SELECT u.id, u.status, u.error_message, u.message_id, u.chat_id, u.sent_at
    FROM unnest($1::uuid[], $2::varchar[], $3::text[], $4::uuid[], $5::uuid[], $6::timestamptz[])
         AS u(id, status, error_message, message_id, chat_id, sent_at)
)
UPDATE scheduled_messages s
SET status = input.status, error_message = input.error_message, sent_message_id = input.message_id,
    chat_id = COALESCE(input.chat_id, s.chat_id), sent_at = input.sent_at,
    claimed_at = CASE WHEN input.status = 'pending' THEN NULL ELSE s.claimed_at END, updated_at = now()
FROM input
WHERE s.id = input.id AND s.status = 'sending'
RETURNING s.id, s.account_id, s.device_id, s.chat_id, s.to_jid, s.body, s.send_at, s.status, s.attempts,
          s.sent_at, s.sent_message_id, s.error_message, s.created_at, s.updated_at
