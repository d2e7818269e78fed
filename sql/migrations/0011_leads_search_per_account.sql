-- migrate: no-transaction
-- migrate: requires-extensions pg_trgm, btree_gin
-- Lead search indexed per account (issue 17, goal 3): one GIN index over (account_id, the search expression),
-- btree_gin providing the uuid operator class. A search of one account intersects the account's posting list
-- with the pattern's trigram lists inside the index, so only that account's candidate rows are read from the
-- heap (the account-less idx_leads_search_trgm of 0002 returned every account's matches to be filtered, or was
-- AND-ed with a bitmap of the whole account). Measured on the bench seed (scale 1, 100k leads on the account):
-- count of '%maría%' 1,819 -> 1,756 blocks uncapped, the capped count (501 rows) 466 -> 403; '%5190%' capped
-- 180 -> 74 (bench/RESULTS.md, issue 17 section).
-- The expression is repeated verbatim by sql/queries/leads.sql. Built CONCURRENTLY: leads stay writable on a
-- big database. Where contrib is missing (the embedded server) the file is skipped and search reads the rows.

-- Also the per-shape pages of sql/queries/leads.sql (issue 17, goals 4 and 5): ?stage_id and ?pipeline_id pages
-- are keyset walks of (account_id, stage_id | pipeline_id, created_at DESC, id DESC), O(page) for a rare stage
-- as for a common one and in the generic plan as in the custom one; their capped counts read those indexes only.
-- They replace idx_leads_account_stage / idx_leads_account_pipeline (same leading columns).
-- And idx_leads_account_created becomes idx_leads_account_created_incl, the same key with the searched columns
-- (and pipeline/stage) included: a search with many matches walks the account's newest leads testing each, and
-- the walk now reads the index only (at 100k leads, '%maría%' page: 2,132 -> 401 blocks; the index is 35 MB
-- against 14 MB, while every page and the board read it as before). None of these need an extension, but they
-- ride in this file (the embedded server keeps the 0001 indexes, which serve the same queries, reading rows).

-- A concurrent build that failed leaves an INVALID index behind: drop those so the builds below run again.
DO $$
DECLARE
    broken text;
BEGIN
    FOR broken IN
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE NOT i.indisvalid AND c.relname IN ('idx_leads_account_search_trgm', 'idx_leads_account_stage_created',
                                                 'idx_leads_account_pipeline_created',
                                                 'idx_leads_account_created_incl')
    LOOP
        EXECUTE format('DROP INDEX %I', broken);
    END LOOP;
END
$$;

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_account_search_trgm ON leads USING gin (
    account_id,
    (coalesce(name,'') || ' ' || coalesce(last_name,'') || ' ' || coalesce(phone,'') || ' ' || coalesce(email,'') || ' ' || coalesce(company,'') || ' ' || jid)
    gin_trgm_ops);

-- Every lead search starts from the account now: the account-less index only costs writes.
DROP INDEX CONCURRENTLY IF EXISTS idx_leads_search_trgm;

-- pipeline_id included: a ?stage_id&pipeline_id count stays index only.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_account_stage_created
    ON leads (account_id, stage_id, created_at DESC, id DESC) INCLUDE (pipeline_id);

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_account_pipeline_created
    ON leads (account_id, pipeline_id, created_at DESC, id DESC);

DROP INDEX CONCURRENTLY IF EXISTS idx_leads_account_stage;

DROP INDEX CONCURRENTLY IF EXISTS idx_leads_account_pipeline;

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_account_created_incl
    ON leads (account_id, created_at DESC, id DESC)
    INCLUDE (name, last_name, phone, email, company, jid, pipeline_id, stage_id);

DROP INDEX CONCURRENTLY IF EXISTS idx_leads_account_created;
