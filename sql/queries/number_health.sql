-- Number health (docs/NUMBER_HEALTH.md): the per-number send budget ledger (device_sends), the device's health
-- state, the campaigns it paused. Every statement is scoped by account ($2 or $1 as noted) and device. Budget
-- reservations of one device are serialised by a transaction advisory lock on
-- hashtextextended('clarin-budget:' || <device id>, 0): the count and the insert cannot interleave, whichever
-- node runs the statement (the owner, normally: sends are routed there).

-- name: budget_send_context
-- Before a send ($1 account, $2 device, $3 local chat JID): the device's limits and pairing time, whether the
-- contact has ever written in this chat (a reply), and whether this number already opened the chat in the last
-- day (a follow-up, not a new conversation). The inbound probe walks idx_messages_chat_ts newest first (ORDER BY
-- its key, LIMIT 1) and stops at the first inbound message: growth data (bench_g10), a 44,362-message chat
-- 11 blocks in the generic plan (a plain EXISTS join chose a bitmap scan of the whole chat: 321 blocks, 36 ms);
-- a cold chat costs as many index tuples as messages we sent it.
SELECT d.send_budget, d.paired_at,
       EXISTS (
           SELECT 1 FROM messages m
           WHERE m.chat_id = (SELECT c.id FROM chats c WHERE c.account_id = $1 AND c.jid = $3)
             AND NOT m.is_from_me
           ORDER BY m."timestamp" DESC, m.id DESC
           LIMIT 1
       ) AS answered,
       EXISTS (
           SELECT 1 FROM device_sends s
           WHERE s.device_id = $2 AND s.chat_jid = $3 AND s.sent_at > now() - interval '1 day'
             AND s.outcome <> 'failed'
       ) AS opened
FROM devices d
WHERE d.id = $2 AND d.account_id = $1

-- name: budget_lock
SELECT pg_advisory_xact_lock(hashtextextended('clarin-budget:' || $1::uuid::text, 0))

-- name: budget_reserve
-- Counts the device's $4-kind sends in the last minute / hour / day and, when each is below its limit ($5 / $6 /
-- $7; NULL = no limit, not counted), records this one ($3 = chat JID). Each count is a range of
-- idx_device_sends_device_kind_time that stops at its limit (knowing "limit reached" is enough), so a busy number
-- costs at most the limits' worth of index tuples. id is NULL when refused. Runs after budget_lock in one
-- transaction.
WITH w AS (
    SELECT CASE WHEN $5::int IS NULL THEN 0 ELSE (
               SELECT count(*) FROM (
                   SELECT 1 FROM device_sends s
                   WHERE s.device_id = $1 AND s.account_id = $2 AND s.kind = $4
                     AND s.sent_at > now() - interval '1 minute'
                   LIMIT $5::int) m) END AS minute,
           CASE WHEN $6::int IS NULL THEN 0 ELSE (
               SELECT count(*) FROM (
                   SELECT 1 FROM device_sends s
                   WHERE s.device_id = $1 AND s.account_id = $2 AND s.kind = $4
                     AND s.sent_at > now() - interval '1 hour'
                   LIMIT $6::int) h) END AS hour,
           CASE WHEN $7::int IS NULL THEN 0 ELSE (
               SELECT count(*) FROM (
                   SELECT 1 FROM device_sends s
                   WHERE s.device_id = $1 AND s.account_id = $2 AND s.kind = $4
                     AND s.sent_at > now() - interval '1 day'
                   LIMIT $7::int) d) END AS day
), ins AS (
    INSERT INTO device_sends (device_id, account_id, chat_jid, kind)
    SELECT $1::uuid, $2::uuid, $3, $4 FROM w
    WHERE ($5::int IS NULL OR w.minute < $5) AND ($6::int IS NULL OR w.hour < $6) AND ($7::int IS NULL OR w.day < $7)
    RETURNING id
)
SELECT (SELECT i.id FROM ins i) AS id, w.minute, w.hour, w.day FROM w

-- name: budget_record
-- A number without any limit for the kind: the send is only recorded (the health view and the failure rate
-- read the ledger), nothing is counted.
INSERT INTO device_sends (device_id, account_id, chat_jid, kind) VALUES ($1, $2, $3, $4) RETURNING id

-- name: budget_frees_in
-- Seconds until the $3-kind window of $4 seconds holds fewer than $5 sends: when the $5-th newest send in it
-- leaves the window.
SELECT extract(epoch FROM s.sent_at + make_interval(secs => $4::float8) - now())::float8 AS seconds
FROM device_sends s
WHERE s.device_id = $1 AND s.account_id = $2 AND s.kind = $3 AND s.sent_at > now() - make_interval(secs => $4::float8)
ORDER BY s.sent_at DESC
OFFSET $5::int - 1
LIMIT 1

-- name: budget_refund
-- Nothing reached WhatsApp (device not connected, the pending row could not be written): the slot is given back.
DELETE FROM device_sends WHERE id = $1 AND device_id = $2 AND account_id = $3

-- name: budget_outcome
UPDATE device_sends SET outcome = $4, error = $5 WHERE id = $1 AND device_id = $2 AND account_id = $3

-- name: budget_prune
-- Rows older than the longest window (a day) count for nothing; a margin keeps them for the health view.
DELETE FROM device_sends WHERE device_id = $1 AND account_id = $2 AND sent_at < now() - interval '2 days'

-- name: health_failure_window
-- The failure-rate guard: sends and failed sends of the device in the last $3 seconds, counted from the last
-- health change if that is later (a person's resume, or the previous pause, starts a fresh window). A send
-- still in flight counts as a send: its row is 'pending' for milliseconds, and only failures are written back.
SELECT count(*) AS finished, count(*) FILTER (WHERE s.outcome = 'failed') AS failed
FROM device_sends s
WHERE s.device_id = $1 AND s.account_id = $2
  AND s.sent_at > GREATEST(now() - make_interval(secs => $3::float8), (
      SELECT COALESCE(d.health_changed_at, '-infinity') FROM devices d WHERE d.id = $1 AND d.account_id = $2))

-- name: health_set
-- A danger signal: the device's health, why, the evidence (JSON) and since when.
UPDATE devices
SET health = $3, health_reason = $4, health_evidence = $5::text::jsonb, health_changed_at = now(), updated_at = now()
WHERE id = $1 AND account_id = $2
RETURNING id, health, health_reason, health_changed_at

-- name: health_pause_campaigns
-- Every campaign of the number that would send pauses, with the reason. updated_at = now() equals the device's
-- health_changed_at (same transaction): a later start by a person is what health_clear_if_resumed looks for.
UPDATE campaigns
SET status = 'paused', pause_reason = $3, updated_at = now()
WHERE device_id = $1 AND account_id = $2 AND status IN ('running', 'scheduled')
RETURNING id, status

-- name: health_clear_if_resumed
-- The worker, before serving a device: a person started one of its campaigns after the pause (POST /start),
-- so the number is trusted again. Campaigns that run again lose their pause reason.
WITH cleared AS (
    UPDATE devices d
    SET health = 'ok', health_reason = NULL, health_changed_at = now(), updated_at = now(),
        health_evidence = jsonb_build_object('resumed_after', d.health, 'reason', d.health_reason,
                                             'evidence', d.health_evidence, 'paused_at', d.health_changed_at)
    WHERE d.id = $1 AND d.health <> 'ok'
      AND EXISTS (
          SELECT 1 FROM campaigns c
          WHERE c.device_id = d.id AND c.account_id = d.account_id AND c.status = 'running'
            AND c.updated_at > d.health_changed_at
      )
    RETURNING d.id, d.account_id, d.health, d.health_changed_at
), reasons AS (
    UPDATE campaigns c SET pause_reason = NULL
    FROM cleared
    WHERE c.device_id = cleared.id AND c.account_id = cleared.account_id AND c.status = 'running'
      AND c.pause_reason IS NOT NULL
    RETURNING 1
)
SELECT cleared.id, cleared.account_id, cleared.health, cleared.health_changed_at FROM cleared

-- name: number_health_view
-- GET /api/devices/:id: health, limits, pairing time, and the ledger's counts per kind and window.
SELECT d.health, d.health_reason, d.health_evidence, d.health_changed_at, d.send_budget, d.paired_at, d.status,
       u.cold_minute, u.cold_hour, u.cold_day, u.reply_minute, u.reply_hour, u.reply_day
FROM devices d
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE s.kind = 'cold' AND s.sent_at > now() - interval '1 minute') AS cold_minute,
           count(*) FILTER (WHERE s.kind = 'cold' AND s.sent_at > now() - interval '1 hour') AS cold_hour,
           count(*) FILTER (WHERE s.kind = 'cold') AS cold_day,
           count(*) FILTER (WHERE s.kind = 'reply' AND s.sent_at > now() - interval '1 minute') AS reply_minute,
           count(*) FILTER (WHERE s.kind = 'reply' AND s.sent_at > now() - interval '1 hour') AS reply_hour,
           count(*) FILTER (WHERE s.kind = 'reply') AS reply_day
    FROM device_sends s
    WHERE s.device_id = d.id AND s.account_id = d.account_id AND s.sent_at > now() - interval '1 day'
) u
WHERE d.id = $2 AND d.account_id = $1

-- name: number_health_pauses
-- The campaigns of the device that are paused (or failed) with a recorded reason, newest first, capped.
SELECT c.id, c.name, c.status, c.pause_reason, c.updated_at
FROM campaigns c
WHERE c.account_id = $1 AND c.device_id = $2 AND c.status IN ('paused', 'failed') AND c.pause_reason IS NOT NULL
ORDER BY c.updated_at DESC, c.id
LIMIT $3

-- name: device_budget_set
UPDATE devices SET send_budget = $3::text::jsonb, updated_at = now()
WHERE id = $1 AND account_id = $2
RETURNING id
