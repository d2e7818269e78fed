-- Exact, O(1) unfiltered totals (issue 17, goal 2): per-account counters kept in the same transaction as the write.
--
-- Before, every dashboard total was a count(*) over the account (at 1M leads: /api/stats 55 ms, the contacts page
-- 3,090 blocks, the chats inbox 5,070 blocks per request). Now the unfiltered totals read a handful of counter rows.
--
-- Contention: one counter row per account would serialise every concurrent create of that account on its row lock
-- until commit. So each account has up to 16 rows (slots), summed on read, and a write adds its delta to a slot that
-- no other in-flight transaction is writing: account_counter_slot() starts at pg_backend_pid() % 16 and takes the
-- first slot whose transaction-level advisory lock (two-int key space: it cannot collide with the service's
-- bigint advisory locks) it gets without waiting. The row lock of that slot is then free too (both are released at
-- commit), so a counter update never waits and cannot join a deadlock, e.g. two ingestion batches that lock the same
-- contacts in key order. Only with more than 16 concurrent writing transactions on one account does a write wait,
-- on its backend's own slot (the server has 2 workers × DB_POOL_SIZE 10 connections by default).
--
-- What is counted (each must stay the predicate of the total it replaces):
--   leads          every lead of the account (stats_account_counts, leads_count without filters)
--   contacts       every contact (stats_account_counts)
--   group_contacts contacts with is_group (the contacts page: is_group = false → contacts - group_contacts)
--   inbox_chats    chats_page_inbox's total: NOT is_archived and a jid that is not a group, newsletter, broadcast or
--                  unresolved LID (inbox_chat() below)
--
-- Triggers: statement-level AFTER INSERT / DELETE with transition tables (one upsert per account and statement, also
-- for multi-row unnest / COPY inserts and cascades). Updates: PostgreSQL allows no transition table on a trigger with
-- a column list, and a statement trigger without one would run on every chats UPDATE of ingestion (one per inbound
-- batch). So updates use row-level triggers restricted to the counted columns (UPDATE OF: they fire only when the
-- statement's SET list names one, which the ingestion upserts do not) and a WHEN clause that queues nothing unless
-- the row's counted state changes (archive / unarchive, a merge renaming a chat's jid).
--
-- Account deletion cascades to leads, contacts and chats: their delete triggers skip accounts that no longer exist
-- (the cascade's delete sees the account row gone) and the FK below drops the counter rows with the account. TRUNCATE
-- (not used by the service) zeroes the table's counters.

CREATE TABLE account_counters (
    account_id     uuid     NOT NULL,
    slot           smallint NOT NULL,
    leads          bigint   NOT NULL DEFAULT 0,
    contacts       bigint   NOT NULL DEFAULT 0,
    group_contacts bigint   NOT NULL DEFAULT 0,
    inbox_chats    bigint   NOT NULL DEFAULT 0,
    CONSTRAINT account_counters_pkey PRIMARY KEY (account_id, slot),
    CONSTRAINT account_counters_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
-- Slot rows are updated by every create and delete: room on their page keeps those updates HOT (no index write),
-- and a vacuum after every 1,000 dead versions (not 20% of a tiny table) keeps a sum at a few pages.
ALTER TABLE account_counters SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
                                  autovacuum_vacuum_threshold = 1000);

-- The chats_page_inbox predicate (sql/queries/chats.sql repeats it verbatim so idx_chats_inbox serves the page).
CREATE FUNCTION inbox_chat(archived boolean, jid text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NOT archived AND jid NOT LIKE '%@g.us' AND jid NOT LIKE '%@newsletter' AND jid NOT LIKE '%@broadcast'
       AND jid NOT LIKE '%@lid'
$$;

CREATE FUNCTION account_counter_slot(p_account uuid) RETURNS smallint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    first_slot int := pg_backend_pid() % 16;
    lock_key int := hashtext(p_account::text);
BEGIN
    FOR i IN 0..15 LOOP
        -- re-entrant: a transaction that already holds a slot of this account gets it back first or next
        IF pg_try_advisory_xact_lock(lock_key, 1700 + (first_slot + i) % 16) THEN
            RETURN ((first_slot + i) % 16)::smallint;
        END IF;
    END LOOP;
    RETURN first_slot::smallint;  -- every slot is being written: wait on this backend's own
END
$$;

-- One add for the row-level update trigger. plpgsql, not a SQL function: PostgreSQL 15 plans a non-inlined SQL
-- function's INSERT again on every call, plpgsql keeps the plan for the session.
CREATE FUNCTION account_counters_add(p_account uuid, d_leads bigint, d_contacts bigint, d_group_contacts bigint,
                                     d_inbox_chats bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO account_counters AS a (account_id, slot, leads, contacts, group_contacts, inbox_chats)
    SELECT p_account, account_counter_slot(p_account), d_leads, d_contacts, d_group_contacts, d_inbox_chats
    WHERE EXISTS (SELECT 1 FROM accounts x WHERE x.id = p_account)  -- gone: an account delete's cascade
    ON CONFLICT (account_id, slot) DO UPDATE
    SET leads = a.leads + EXCLUDED.leads,
        contacts = a.contacts + EXCLUDED.contacts,
        group_contacts = a.group_contacts + EXCLUDED.group_contacts,
        inbox_chats = a.inbox_chats + EXCLUDED.inbox_chats;
END
$$;

-- One function per table for its INSERT and DELETE statement triggers (transition tables are named per trigger):
-- ONE upsert per statement, the deltas grouped by account in account order (one lock order for statements that
-- span accounts). Deletes skip accounts that are gone (an account delete's cascade: its counter rows go by FK).
CREATE FUNCTION account_counters_leads_stmt() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO account_counters AS a (account_id, slot, leads)
        SELECT n.account_id, account_counter_slot(n.account_id), count(*)
        FROM counted_new n GROUP BY n.account_id ORDER BY n.account_id
        ON CONFLICT (account_id, slot) DO UPDATE SET leads = a.leads + EXCLUDED.leads;
    ELSE
        INSERT INTO account_counters AS a (account_id, slot, leads)
        SELECT o.account_id, account_counter_slot(o.account_id), -count(*)
        FROM counted_old o WHERE EXISTS (SELECT 1 FROM accounts x WHERE x.id = o.account_id)
        GROUP BY o.account_id ORDER BY o.account_id
        ON CONFLICT (account_id, slot) DO UPDATE SET leads = a.leads + EXCLUDED.leads;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION account_counters_contacts_stmt() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO account_counters AS a (account_id, slot, contacts, group_contacts)
        SELECT n.account_id, account_counter_slot(n.account_id), count(*), count(*) FILTER (WHERE n.is_group)
        FROM counted_new n GROUP BY n.account_id ORDER BY n.account_id
        ON CONFLICT (account_id, slot) DO UPDATE
        SET contacts = a.contacts + EXCLUDED.contacts, group_contacts = a.group_contacts + EXCLUDED.group_contacts;
    ELSE
        INSERT INTO account_counters AS a (account_id, slot, contacts, group_contacts)
        SELECT o.account_id, account_counter_slot(o.account_id), -count(*), -count(*) FILTER (WHERE o.is_group)
        FROM counted_old o WHERE EXISTS (SELECT 1 FROM accounts x WHERE x.id = o.account_id)
        GROUP BY o.account_id ORDER BY o.account_id
        ON CONFLICT (account_id, slot) DO UPDATE
        SET contacts = a.contacts + EXCLUDED.contacts, group_contacts = a.group_contacts + EXCLUDED.group_contacts;
    END IF;
    RETURN NULL;
END
$$;

-- Only inbox chats count: inserting a group chat, a newsletter or an archived chat locks no counter row.
CREATE FUNCTION account_counters_chats_stmt() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO account_counters AS a (account_id, slot, inbox_chats)
        SELECT n.account_id, account_counter_slot(n.account_id), count(*)
        FROM counted_new n WHERE inbox_chat(n.is_archived, n.jid) GROUP BY n.account_id ORDER BY n.account_id
        ON CONFLICT (account_id, slot) DO UPDATE SET inbox_chats = a.inbox_chats + EXCLUDED.inbox_chats;
    ELSE
        INSERT INTO account_counters AS a (account_id, slot, inbox_chats)
        SELECT o.account_id, account_counter_slot(o.account_id), -count(*)
        FROM counted_old o
        WHERE inbox_chat(o.is_archived, o.jid) AND EXISTS (SELECT 1 FROM accounts x WHERE x.id = o.account_id)
        GROUP BY o.account_id ORDER BY o.account_id
        ON CONFLICT (account_id, slot) DO UPDATE SET inbox_chats = a.inbox_chats + EXCLUDED.inbox_chats;
    END IF;
    RETURN NULL;
END
$$;

-- Row-level, for updates that change what a row counts for (see the header: rare, never the ingestion path).
CREATE FUNCTION account_counters_row_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'leads' THEN
        PERFORM account_counters_add(OLD.account_id, -1, 0, 0, 0);
        PERFORM account_counters_add(NEW.account_id, 1, 0, 0, 0);
    ELSIF TG_TABLE_NAME = 'contacts' THEN
        PERFORM account_counters_add(OLD.account_id, 0, -1, -(OLD.is_group::int), 0);
        PERFORM account_counters_add(NEW.account_id, 0, 1, NEW.is_group::int, 0);
    ELSE
        PERFORM account_counters_add(OLD.account_id, 0, 0, 0, -(inbox_chat(OLD.is_archived, OLD.jid)::int));
        PERFORM account_counters_add(NEW.account_id, 0, 0, 0, inbox_chat(NEW.is_archived, NEW.jid)::int);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION account_counters_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'leads' THEN
        UPDATE account_counters SET leads = 0 WHERE leads <> 0;
    ELSIF TG_TABLE_NAME = 'contacts' THEN
        UPDATE account_counters SET contacts = 0, group_contacts = 0 WHERE contacts <> 0 OR group_contacts <> 0;
    ELSE
        UPDATE account_counters SET inbox_chats = 0 WHERE inbox_chats <> 0;
    END IF;
    RETURN NULL;
END
$$;

-- No write may slip between the back-fill's snapshot and the triggers: writers wait for this transaction (reads go
-- on). Same order as the service's statements that touch several of these tables.
LOCK TABLE contacts, chats, leads IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER account_counters_ins AFTER INSERT ON leads
    REFERENCING NEW TABLE AS counted_new FOR EACH STATEMENT EXECUTE FUNCTION account_counters_leads_stmt();
CREATE TRIGGER account_counters_del AFTER DELETE ON leads
    REFERENCING OLD TABLE AS counted_old FOR EACH STATEMENT EXECUTE FUNCTION account_counters_leads_stmt();
CREATE TRIGGER account_counters_upd AFTER UPDATE OF account_id ON leads
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
    EXECUTE FUNCTION account_counters_row_update();
CREATE TRIGGER account_counters_trunc AFTER TRUNCATE ON leads
    FOR EACH STATEMENT EXECUTE FUNCTION account_counters_truncate();

CREATE TRIGGER account_counters_ins AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS counted_new FOR EACH STATEMENT EXECUTE FUNCTION account_counters_contacts_stmt();
CREATE TRIGGER account_counters_del AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS counted_old FOR EACH STATEMENT EXECUTE FUNCTION account_counters_contacts_stmt();
CREATE TRIGGER account_counters_upd AFTER UPDATE OF account_id, is_group ON contacts
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.is_group IS DISTINCT FROM NEW.is_group)
    EXECUTE FUNCTION account_counters_row_update();
CREATE TRIGGER account_counters_trunc AFTER TRUNCATE ON contacts
    FOR EACH STATEMENT EXECUTE FUNCTION account_counters_truncate();

CREATE TRIGGER account_counters_ins AFTER INSERT ON chats
    REFERENCING NEW TABLE AS counted_new FOR EACH STATEMENT EXECUTE FUNCTION account_counters_chats_stmt();
CREATE TRIGGER account_counters_del AFTER DELETE ON chats
    REFERENCING OLD TABLE AS counted_old FOR EACH STATEMENT EXECUTE FUNCTION account_counters_chats_stmt();
CREATE TRIGGER account_counters_upd AFTER UPDATE OF account_id, is_archived, jid ON chats
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id
                       OR inbox_chat(OLD.is_archived, OLD.jid) IS DISTINCT FROM inbox_chat(NEW.is_archived, NEW.jid))
    EXECUTE FUNCTION account_counters_row_update();
CREATE TRIGGER account_counters_trunc AFTER TRUNCATE ON chats
    FOR EACH STATEMENT EXECUTE FUNCTION account_counters_truncate();

-- Back-fill: the existing rows, in slot 0 of every account (an account created later gets its first row
-- from its first write; reads sum to 0 without one).
INSERT INTO account_counters (account_id, slot, leads, contacts, group_contacts, inbox_chats)
SELECT a.id, 0,
       (SELECT count(*) FROM leads l WHERE l.account_id = a.id),
       (SELECT count(*) FROM contacts k WHERE k.account_id = a.id),
       (SELECT count(*) FROM contacts k WHERE k.account_id = a.id AND k.is_group),
       (SELECT count(*) FROM chats c WHERE c.account_id = a.id AND inbox_chat(c.is_archived, c.jid))
FROM accounts a
ORDER BY a.id;
