-- Bench housekeeping statements (bench/common.py, bench/load.py).

-- name: bench_database_exists
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists

-- name: bench_large_account
-- The large account of a seed and its user / default pipeline (load.py, explain.py).
SELECT a.id::text AS account_id, u.id::text AS user_id,
       (SELECT p.id::text FROM pipelines p WHERE p.account_id = a.id AND p.is_default) AS pipeline_id
FROM accounts a
JOIN users u ON u.account_id = a.id AND u.username = 'bench_large'
WHERE a.id = md5($1::int::text || ':acct:0:0')::uuid

-- name: bench_sample_leads
-- Lead ids spread over the whole board (every n-th lead by created_at).
SELECT id::text AS id FROM (
    SELECT id, row_number() OVER (ORDER BY created_at DESC, id DESC) AS rn
    FROM leads WHERE account_id = $1::uuid
) x WHERE rn % $2::int = 0
ORDER BY rn
LIMIT $3::int

-- name: bench_stages_of_account
SELECT ps.id::text AS id, ps.pipeline_id::text AS pipeline_id, ps.position
FROM pipeline_stages ps JOIN pipelines p ON p.id = ps.pipeline_id
WHERE p.account_id = $1::uuid
ORDER BY p.created_at, ps.position

-- name: bench_tags_of_account
SELECT id::text AS id FROM tags WHERE account_id = $1::uuid ORDER BY name LIMIT $2::int

-- name: bench_busiest_chats
-- The chats with the most messages first (the worst case for a message page), then a spread of others.
SELECT c.id::text AS id, c.jid, n
FROM chats c
JOIN LATERAL (SELECT count(*) AS n FROM messages m WHERE m.chat_id = c.id) cnt ON true
WHERE c.account_id = $1::uuid
ORDER BY n DESC
LIMIT $2::int

-- name: bench_cleanup_leads
-- Leads created by a load run (their phones start with the run prefix).
WITH d AS (DELETE FROM leads WHERE account_id = $1::uuid AND source = 'bench-load' RETURNING 1)
SELECT count(*) AS n FROM d

-- name: bench_cleanup_device_messages
-- Messages sent through the load run's device, then the device itself.
WITH d AS (DELETE FROM messages WHERE account_id = $1::uuid AND device_id = $2::uuid RETURNING 1)
SELECT count(*) AS n FROM d

-- name: bench_cleanup_devices
WITH d AS (DELETE FROM devices WHERE account_id = $1::uuid AND name LIKE 'bench-load%' RETURNING 1)
SELECT count(*) AS n FROM d


-- name: bench_server_version
SELECT current_setting('server_version') AS version

-- name: bench_explain_fixtures
-- Realistic parameters for explain.py: a mid-board lead, the second stage of the default pipeline, a tag,
-- the busiest chat and its 60th-newest message (a keyset cursor one page deep).
SELECT (SELECT l.id::text FROM leads l WHERE l.account_id = $1::uuid ORDER BY l.created_at DESC, l.id DESC
        OFFSET 5000 LIMIT 1) AS lead_id,
       (SELECT ps.id::text FROM pipeline_stages ps JOIN pipelines p ON p.id = ps.pipeline_id
         WHERE p.account_id = $1::uuid AND p.is_default ORDER BY ps.position OFFSET 1 LIMIT 1) AS stage_id,
       (SELECT p.id::text FROM pipelines p WHERE p.account_id = $1::uuid AND p.is_default) AS pipeline_id,
       (SELECT t.id::text FROM tags t WHERE t.account_id = $1::uuid ORDER BY t.name LIMIT 1) AS tag_id,
       (SELECT c.jid FROM contacts c WHERE c.account_id = $1::uuid ORDER BY c.jid LIMIT 1) AS contact_jid,
       (SELECT m.chat_id::text FROM messages m WHERE m.account_id = $1::uuid
         GROUP BY m.chat_id ORDER BY count(*) DESC LIMIT 1) AS busy_chat_id

-- name: bench_explain_chat_device
-- The send-budget specs (docs/NUMBER_HEALTH.md): the busiest chat's JID and a device of the account.
SELECT (SELECT c.jid FROM chats c WHERE c.id = $2::uuid) AS chat_jid,
       (SELECT d.id::text FROM devices d WHERE d.account_id = $1::uuid ORDER BY d.created_at, d.id LIMIT 1) AS device_id

-- name: bench_explain_cursor
SELECT m."timestamp"::text AS ts, m.id::text AS id FROM messages m
WHERE m.chat_id = $1::uuid ORDER BY m."timestamp" DESC, m.id DESC OFFSET 60 LIMIT 1

-- name: bench_explain_lead_page_ids
SELECT l.id::text AS id FROM leads l WHERE l.account_id = $1::uuid ORDER BY l.created_at DESC, l.id DESC LIMIT 50

-- name: bench_explain_contact_page_ids
SELECT c.id::text AS id FROM contacts c WHERE c.account_id = $1::uuid AND NOT c.is_group
ORDER BY COALESCE(c.custom_name, c.name, c.push_name, c.phone) ASC NULLS LAST, c.id LIMIT 50

-- name: bench_vacuum_after_cleanup
-- The run deleted what it wrote: reclaim it now, so the next run does not meet autovacuum on these tables
-- mid-measurement (its first endpoint measured 25 % below the baseline when it did).
VACUUM (ANALYZE) leads, lead_tags, contacts, chats, messages

-- name: bench_explain_lead_cursor
-- The keyset cursor after the 5000th-newest lead (explain.py: a cursor page as deep as offset=5000).
SELECT l.created_at, l.id FROM leads l WHERE l.account_id = $1::uuid
ORDER BY l.created_at DESC, l.id DESC OFFSET 4999 LIMIT 1
