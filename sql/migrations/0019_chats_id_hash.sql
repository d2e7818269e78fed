-- migrate: no-transaction
-- A hash index on chats.id for the chats pages' row fetches (issue 17, goal 1).
--
-- A searched chats page finds its rows in idx_chats_order (an index-only walk that filters on the index tuple), then
-- fetches each row by id: chats_pkey is a 3-level btree at 200k chats, 4 blocks a row with the heap page, 204 of the
-- ~280 blocks a 50-row page costs at 1M leads. A hash index answers the same equality from one bucket page (its
-- metapage is cached by the backend): 2 blocks a row (EXPLAIN (ANALYZE, BUFFERS) on clarin_bench_g10: 282 -> 181).
-- The planner picks it for every `chats.id = x` probe (chats_get, messages' chat checks), never for ranges or order,
-- which stay on the btree. Its cost: chats rows whose update changes an indexed column (a new message moves
-- last_message_at, a key column of idx_chats_order) insert one more index entry; half the primary key's size.
--
-- Built CONCURRENTLY (writers are not blocked); a build that failed leaves an INVALID index, dropped first.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE NOT i.indisvalid AND c.relname = 'idx_chats_id_hash') THEN
        DROP INDEX idx_chats_id_hash;
    END IF;
END
$$;

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chats_id_hash ON chats USING hash (id);
