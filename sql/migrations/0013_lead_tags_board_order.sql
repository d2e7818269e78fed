-- migrate: no-transaction
-- A tag's leads in board order (issue 17): lead_tags carries its lead's sort key, lead_created_at (= leads.created_at),
-- and idx_lead_tags_tag_created (tag_id, lead_created_at DESC, lead_id DESC) walks a tag's leads newest first from
-- any keyset cursor. ?tag_ids pages (sql/queries/leads.sql leads_page_tag) then read O(page) index entries whatever
-- the tag's size, where they hashed every lead id of the tag first (1M leads, a 15k-lead tag: ~4,900 blocks a page,
-- mostly visibility-map pins of an index-only scan over randomly placed rows).
--
-- Kept right by triggers, whatever writes lead_tags (tags.sql, contacts.sql merges, kommo.sql, tests):
--   lead_tags_lead_key   BEFORE INSERT OR UPDATE OF lead_id, lead_created_at ON lead_tags: the key is read from the
--                        lead (by primary key); a value the writer passes is overwritten.
--   leads_created_at_tags AFTER UPDATE OF created_at ON leads (no statement changes it today): the lead's rows follow.
-- (bench/sql/seed.sql loads lead_tags with triggers off and writes the same key itself.)
--
-- Applied to a database with data (clarin_bench_g10: 6M lead_tags rows): the column is added without a rewrite, the
-- triggers go in first (new rows carry the key from then on), the existing rows are back-filled in batches of
-- physical pages, each batch its own transaction (a DO block that commits: writers are blocked by no long lock), then
-- NOT NULL is proved by a CHECK validated without blocking writes (SET NOT NULL then needs no scan), the index is
-- built CONCURRENTLY and the old (tag_id, lead_id) index, which the new one replaces for every tag_id lookup, dropped.
-- Every statement is idempotent: a failure re-runs the file.

ALTER TABLE lead_tags ADD COLUMN IF NOT EXISTS lead_created_at timestamptz;

CREATE OR REPLACE FUNCTION lead_tags_lead_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.lead_created_at := (SELECT l.created_at FROM leads l WHERE l.id = NEW.lead_id);
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION leads_created_at_tags() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_tags SET lead_created_at = NEW.created_at WHERE lead_id = NEW.id;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS lead_tags_lead_key ON lead_tags;

CREATE TRIGGER lead_tags_lead_key BEFORE INSERT OR UPDATE OF lead_id, lead_created_at ON lead_tags
    FOR EACH ROW EXECUTE FUNCTION lead_tags_lead_key();

DROP TRIGGER IF EXISTS leads_created_at_tags ON leads;

CREATE TRIGGER leads_created_at_tags AFTER UPDATE OF created_at ON leads
    FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at) EXECUTE FUNCTION leads_created_at_tags();

-- The back-fill: pages [p, p + 4096) of lead_tags a transaction (~550k rows). The UPDATE names lead_created_at, so
-- lead_tags_lead_key fires and reads each row's key from its lead by primary key (the NULL written here never
-- lands). Rows that moved beyond the table's size at the start are new versions, already keyed.
DO $$
DECLARE
    last_page bigint := pg_relation_size('lead_tags') / current_setting('block_size')::bigint;
    p bigint := 0;
BEGIN
    WHILE p <= last_page LOOP
        UPDATE lead_tags lt SET lead_created_at = NULL
        WHERE lt.ctid >= format('(%s,0)', p)::tid AND lt.ctid < format('(%s,0)', p + 4096)::tid
          AND lt.lead_created_at IS NULL;
        COMMIT;
        p := p + 4096;
    END LOOP;
END
$$;

-- NOT NULL without an exclusive lock held over a scan: a CHECK validated under SHARE UPDATE EXCLUSIVE, then SET
-- NOT NULL, which trusts it (PostgreSQL 12+), and the CHECK goes.
ALTER TABLE lead_tags DROP CONSTRAINT IF EXISTS lead_tags_lead_created_at_nn;

ALTER TABLE lead_tags ADD CONSTRAINT lead_tags_lead_created_at_nn CHECK (lead_created_at IS NOT NULL) NOT VALID;

ALTER TABLE lead_tags VALIDATE CONSTRAINT lead_tags_lead_created_at_nn;

ALTER TABLE lead_tags ALTER COLUMN lead_created_at SET NOT NULL;

ALTER TABLE lead_tags DROP CONSTRAINT IF EXISTS lead_tags_lead_created_at_nn;

-- A concurrent build that failed leaves an INVALID index behind: drop it so the build below runs again.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE NOT i.indisvalid AND c.relname = 'idx_lead_tags_tag_created') THEN
        DROP INDEX idx_lead_tags_tag_created;
    END IF;
END
$$;

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_lead_tags_tag_created
    ON lead_tags (tag_id, lead_created_at DESC, lead_id DESC);

-- Every tag_id lookup (tag deletes' cascade, kommo prunes, counts) is served by the new index.
DROP INDEX CONCURRENTLY IF EXISTS idx_lead_tags_tag;

-- The back-fill left a dead version of every row: make the space reusable, refresh the statistics and the
-- visibility map (the page walk is index only on lead_tags).
VACUUM (ANALYZE) lead_tags;
