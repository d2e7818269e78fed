-- migrate: no-transaction
-- migrate: requires-extensions pg_trgm, btree_gin
-- Contacts and chats (issue 17, goals 3 and 5): search indexes that start from the account, and keyset orders.
--
-- Search. 0002's trigram indexes hold every account's rows: a search recheck-read the matches of every tenant and
-- the planner could not bound a page or a count to the caller's account. The new ones are multi-column GIN
-- (btree_gin): (account_id, <the same expression> gin_trgm_ops). GIN's fast scan advances the account's posting tree
-- to the trigram posting lists' TIDs (it does not read the whole account), so a search touches the caller's
-- matches only. Same expressions as 0002 (sql/queries repeat them verbatim), so the same ILIKE matches.
--
-- Keyset orders (GET /api/contacts and /api/chats ?cursor=, clarin/http/cursor.py). A cursor is a row comparison on
-- an index, so every key column must be NOT NULL and walk one direction:
--   contacts  (is the display name NULL, display name or '', id) ascending = "display name ASC NULLS LAST, id";
--             the search columns are INCLUDEd so a searched page (and its capped count) walks this index with an
--             Index Only Scan that filters on the index tuple: O(page / selectivity) index pages, no heap reads.
--   chats     (is_pinned, last_message_at or -infinity, id) descending = "pinned first, newest first, NULLs last"
--             (the id tie-break is now id DESC). Not partial: the inbox filters NOT is_archived on it and
--             archived=true walks the same index.
-- They replace idx_contacts_display and idx_chats_inbox (0001), whose orders the statements no longer use.
--
-- Built CONCURRENTLY (writers keep going on big tables); a build that failed leaves an INVALID index, dropped first.
-- Where pg_trgm / btree_gin are missing (the embedded PostgreSQL) this file is skipped: searches and pages still
-- answer the same rows, by scanning the account.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

DO $$
DECLARE
    leftover text;
BEGIN
    FOR leftover IN
        SELECT c.relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
        WHERE NOT i.indisvalid AND c.relname IN ('idx_contacts_search_acct', 'idx_chats_search_acct',
                                                  'idx_contacts_keyset', 'idx_chats_order')
    LOOP
        EXECUTE format('DROP INDEX %I', leftover);
    END LOOP;
END
$$;

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_contacts_search_acct ON contacts USING gin (account_id,
    (coalesce(name,'') || ' ' || coalesce(last_name,'') || ' ' || coalesce(short_name,'') || ' ' || coalesce(custom_name,'') || ' ' || coalesce(push_name,'') || ' ' || coalesce(phone,'') || ' ' || jid || ' ' || coalesce(email,'') || ' ' || coalesce(company,''))
    gin_trgm_ops);

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chats_search_acct ON chats USING gin (account_id,
    (coalesce(name,'') || ' ' || jid) gin_trgm_ops);

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_contacts_keyset ON contacts (account_id, is_group,
    (COALESCE(custom_name, name, push_name, phone) IS NULL), (COALESCE(custom_name, name, push_name, phone, '')), id)
    INCLUDE (name, last_name, short_name, custom_name, push_name, phone, jid, email, company);

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chats_order ON chats (account_id, is_pinned DESC,
    (COALESCE(last_message_at, '-infinity'::timestamptz)) DESC, id DESC);

DROP INDEX CONCURRENTLY IF EXISTS idx_contacts_search_trgm;
DROP INDEX CONCURRENTLY IF EXISTS idx_chats_search_trgm;
DROP INDEX CONCURRENTLY IF EXISTS idx_contacts_display;
DROP INDEX CONCURRENTLY IF EXISTS idx_chats_inbox;
