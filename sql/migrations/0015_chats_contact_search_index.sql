-- migrate: no-transaction
-- migrate: requires-extensions pg_trgm, btree_gin
-- GET /api/chats?search= reads chats only (0014 copies the contact's search text onto chats.contact_search):
--
--   idx_chats_contact_search_acct  (account_id, contact_search gin_trgm_ops): a rare term is a BitmapOr of it and
--       idx_chats_search_acct (name + JID, 0012), then a sort of its few hits;
--   idx_chats_order (rebuilt)  the same key as 0012's (account_id, is_pinned DESC, last_message_at or -infinity
--       DESC, id DESC), now INCLUDing every column the searched page and its capped count filter on: a common term
--       walks it in inbox order as an Index Only Scan that filters on the index tuple (O(page / selectivity) index
--       tuples, ~40 a page, no heap read but the page's rows). last_message_at is INCLUDEd because an index-only
--       scan needs the expression key's columns themselves. Same name and key: the inbox and the other statements
--       walk it as before, and chats' writes maintain no extra index. The old one is renamed
--       idx_chats_order_0012 first, the new one built, the old dropped (each step idempotent: a re-run after a
--       failure resumes; a rebuilt index already has INCLUDE columns and is kept).
--
-- Built CONCURRENTLY (an INVALID leftover of a failed build is dropped first). Skipped where pg_trgm / btree_gin
-- are missing (the embedded PostgreSQL): 0012 is skipped too, and the search filters the walk's heap rows, same
-- matches.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

DO $$
DECLARE
    leftover text;
BEGIN
    FOR leftover IN
        SELECT c.relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
        WHERE NOT i.indisvalid AND c.relname IN ('idx_chats_contact_search_acct', 'idx_chats_order')
    LOOP
        EXECUTE format('DROP INDEX %I', leftover);
    END LOOP;
    -- 0012's idx_chats_order (no INCLUDE columns) steps aside for the rebuilt one
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
               WHERE c.relname = 'idx_chats_order' AND i.indnatts = i.indnkeyatts) THEN
        IF EXISTS (SELECT 1 FROM pg_class WHERE relname = 'idx_chats_order_0012') THEN
            DROP INDEX idx_chats_order_0012;
        END IF;
        ALTER INDEX idx_chats_order RENAME TO idx_chats_order_0012;
    END IF;
END
$$;

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chats_contact_search_acct ON chats USING gin (account_id,
    contact_search gin_trgm_ops);

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chats_order ON chats (account_id, is_pinned DESC,
    (COALESCE(last_message_at, '-infinity'::timestamptz)) DESC, id DESC)
    INCLUDE (last_message_at, is_archived, jid, name, contact_search, device_id, unread_count);

DROP INDEX CONCURRENTLY IF EXISTS idx_chats_order_0012;

-- 0014's back-fill rewrote every chat with a contact: VACUUM sets the visibility map again (the index-only walk
-- reads no heap page that is all-visible) and ANALYZE gives the planner contact_search's statistics.
VACUUM (ANALYZE) chats;
