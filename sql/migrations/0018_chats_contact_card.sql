-- migrate: no-transaction
-- The chat list's contact card on the chat itself (issue 17, goal 1): chats.contact_phone, contact_avatar_url,
-- contact_custom_name, contact_name.
--
-- Every chats page showed four columns of the chat's contact (same account + JID), one contacts_account_id_jid_key
-- probe per row: 4 blocks a row, about 40 % of a page's blocks (docs/INBOX.md). 0014 already copies the contact's
-- search text onto its chat with triggers; the same triggers now copy these four columns too (raw values, NULL
-- without a contact), so a page reads chats only. The contact's other columns are not on the chat.
--
-- Kept by 0014's triggers, in the writing transaction, for every writer (their functions are replaced here):
--   contacts AFTER INSERT / UPDATE OF the searched or shown columns, account_id, jid / DELETE;
--   chats BEFORE INSERT / UPDATE OF account_id, jid.
-- avatar_url joins the update trigger's column list (it is shown, not searched). The bench seeder (bench/sql/seed.sql)
-- loads with triggers off and recomputes the columns the same way.
--
-- Applied to a database with data, like 0013: the columns are added without a rewrite, the triggers' new functions go
-- in first (every write from then on carries the card), then the existing chats are back-filled in batches of
-- physical pages, each batch its own transaction, so writers wait for no long lock (one transaction on 1M-lead data
-- held chats' ACCESS EXCLUSIVE lock for 28 s: the ALTER's lock lasts until COMMIT). A contact edited while its chat's
-- batch runs can leave that chat with the card from just before the edit, until the contact's next change; the next
-- statement re-copies what still differs, and a VACUUM clears the dead versions. Every statement is idempotent: a
-- failure re-runs the file. No extension needed: the embedded PostgreSQL applies this file too.

ALTER TABLE chats ADD COLUMN IF NOT EXISTS contact_phone varchar(50),
                  ADD COLUMN IF NOT EXISTS contact_avatar_url text,
                  ADD COLUMN IF NOT EXISTS contact_custom_name varchar(255),
                  ADD COLUMN IF NOT EXISTS contact_name varchar(255);

CREATE OR REPLACE FUNCTION chats_contact_search_from_contact() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    txt text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE chats c SET contact_search = NULL, contact_phone = NULL, contact_avatar_url = NULL,
                           contact_custom_name = NULL, contact_name = NULL
        WHERE c.account_id = OLD.account_id AND c.jid = OLD.jid
          AND num_nonnulls(c.contact_search, c.contact_phone, c.contact_avatar_url, c.contact_custom_name,
                           c.contact_name) > 0;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.jid IS DISTINCT FROM NEW.jid) THEN
        UPDATE chats c SET contact_search = NULL, contact_phone = NULL, contact_avatar_url = NULL,
                           contact_custom_name = NULL, contact_name = NULL
        WHERE c.account_id = OLD.account_id AND c.jid = OLD.jid
          AND num_nonnulls(c.contact_search, c.contact_phone, c.contact_avatar_url, c.contact_custom_name,
                           c.contact_name) > 0;
    END IF;
    txt := contact_search_text(NEW.name, NEW.last_name, NEW.short_name, NEW.custom_name, NEW.push_name, NEW.phone,
                               NEW.jid, NEW.email, NEW.company);
    UPDATE chats c SET contact_search = txt, contact_phone = NEW.phone, contact_avatar_url = NEW.avatar_url,
                       contact_custom_name = NEW.custom_name, contact_name = NEW.name
    WHERE c.account_id = NEW.account_id AND c.jid = NEW.jid
      AND (c.contact_search, c.contact_phone, c.contact_avatar_url, c.contact_custom_name, c.contact_name)
          IS DISTINCT FROM (txt, NEW.phone, NEW.avatar_url, NEW.custom_name, NEW.name);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION chats_contact_search_of_chat() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- no contact: SELECT INTO (not STRICT) sets every target to NULL
    SELECT contact_search_text(k.name, k.last_name, k.short_name, k.custom_name, k.push_name, k.phone, k.jid,
                               k.email, k.company), k.phone, k.avatar_url, k.custom_name, k.name
    INTO NEW.contact_search, NEW.contact_phone, NEW.contact_avatar_url, NEW.contact_custom_name, NEW.contact_name
    FROM contacts k WHERE k.account_id = NEW.account_id AND k.jid = NEW.jid;
    RETURN NEW;
END
$$;

-- replaced in one statement: no moment without it
CREATE OR REPLACE TRIGGER contacts_chat_search_upd
    AFTER UPDATE OF account_id, jid, name, last_name, short_name, custom_name, push_name, phone, email, company,
                    avatar_url
    ON contacts FOR EACH ROW
    WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.jid IS DISTINCT FROM NEW.jid
          OR OLD.name IS DISTINCT FROM NEW.name OR OLD.last_name IS DISTINCT FROM NEW.last_name
          OR OLD.short_name IS DISTINCT FROM NEW.short_name OR OLD.custom_name IS DISTINCT FROM NEW.custom_name
          OR OLD.push_name IS DISTINCT FROM NEW.push_name OR OLD.phone IS DISTINCT FROM NEW.phone
          OR OLD.email IS DISTINCT FROM NEW.email OR OLD.company IS DISTINCT FROM NEW.company
          OR OLD.avatar_url IS DISTINCT FROM NEW.avatar_url)
    EXECUTE FUNCTION chats_contact_search_from_contact();

-- Back-fill in batches of 4096 heap pages (chats whose contact exists; the others stay NULL).
DO $$
DECLARE
    last_page bigint := pg_relation_size('chats') / current_setting('block_size')::bigint;
    p bigint := 0;
BEGIN
    WHILE p <= last_page LOOP
        UPDATE chats c
        SET contact_phone = k.phone, contact_avatar_url = k.avatar_url, contact_custom_name = k.custom_name,
            contact_name = k.name
        FROM contacts k
        WHERE c.ctid >= format('(%s,0)', p)::tid AND c.ctid < format('(%s,0)', p + 4096)::tid
          AND k.account_id = c.account_id AND k.jid = c.jid
          AND (c.contact_phone, c.contact_avatar_url, c.contact_custom_name, c.contact_name)
              IS DISTINCT FROM (k.phone, k.avatar_url, k.custom_name, k.name);
        COMMIT;
        p := p + 4096;
    END LOOP;
END
$$;

-- What changed under a batch (normally nothing).
UPDATE chats c
SET contact_phone = k.phone, contact_avatar_url = k.avatar_url, contact_custom_name = k.custom_name,
    contact_name = k.name
FROM contacts k
WHERE k.account_id = c.account_id AND k.jid = c.jid
  AND (c.contact_phone, c.contact_avatar_url, c.contact_custom_name, c.contact_name)
      IS DISTINCT FROM (k.phone, k.avatar_url, k.custom_name, k.name);

-- The back-fill left a dead version of most chats and new entries in every chats index, the GIN ones' pending lists
-- included: until a vacuum, searches read them all (bench/explain.py on 100k leads: ?search=zzqx 36 -> 788 blocks).
VACUUM (ANALYZE) chats;
