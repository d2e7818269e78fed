-- Statements of bench/growth.py (the growth profile: blocks per request at 10k vs 1M leads).

-- name: growth_blocks
-- Shared blocks this database has touched so far (hit + read), as every backend last flushed them; and what tells a
-- window that autovacuum touched them too (pg_stat_database counts its workers' blocks): a worker running now, and
-- how many autovacuum / autoanalyze runs have finished so far.
SELECT (SELECT (d.blks_hit + d.blks_read)::bigint FROM pg_stat_database d
        WHERE d.datname = current_database()) AS blocks,
       (SELECT coalesce(sum(t.autovacuum_count + t.autoanalyze_count), 0)::bigint
        FROM pg_stat_user_tables t) AS maintenance,
       (SELECT count(*)::int FROM pg_stat_activity a
        WHERE a.backend_type = 'autovacuum worker' AND a.datname = current_database()) AS vacuuming

-- name: growth_clear_snapshot
SELECT pg_stat_clear_snapshot()

-- name: growth_fixtures
-- The large account's parameters: a stage of its default pipeline with leads, a tag, a lead, and its busiest
-- chat among the 200 most recently active (counting every chat's messages would read the whole table).
SELECT (SELECT ps.id::text FROM pipeline_stages ps JOIN pipelines p ON p.id = ps.pipeline_id
         WHERE p.account_id = $1::uuid AND p.is_default ORDER BY ps.position OFFSET 1 LIMIT 1) AS stage_id,
       (SELECT t.id::text FROM tags t WHERE t.account_id = $1::uuid ORDER BY t.name LIMIT 1) AS tag_id,
       (SELECT l.id::text FROM leads l WHERE l.account_id = $1::uuid ORDER BY l.created_at DESC, l.id DESC
         OFFSET 100 LIMIT 1) AS lead_id,
       (SELECT c.id::text FROM (SELECT c.id FROM chats c WHERE c.account_id = $1::uuid
                                ORDER BY c.last_message_at DESC NULLS LAST LIMIT 200) c
         ORDER BY (SELECT count(*) FROM messages m WHERE m.chat_id = c.id) DESC LIMIT 1) AS chat_id

-- name: growth_message_at_depth
-- The id of the chat's message $2 deep (newest first): a before_id that many messages back.
SELECT m.id::text AS id FROM messages m
WHERE m.chat_id = $1::uuid AND m.account_id = $3::uuid
ORDER BY m."timestamp" DESC, m.id DESC OFFSET $2::int LIMIT 1

-- name: growth_delete_created_leads
-- The leads the write probe created (their ids), so repeated runs leave the data set as seeded.
DELETE FROM leads WHERE account_id = $1::uuid AND id = ANY($2::uuid[])
