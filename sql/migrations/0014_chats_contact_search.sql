-- Chats search by the chat's contact (issue 17, goal 3): the contact's searchable text is copied onto its chat.
--
-- GET /api/chats?search= matches a chat by its own name + JID or by its contact's (same account + JID) search
-- expression (0002's: name, last/short/custom/push name, phone, JID, email, company). Until now the page joined
-- each walked chat to its contact (~5 blocks per chat: 2,096 blocks per request at 10k leads, 9,903 at 1M).
-- chats.contact_search holds exactly that contact expression (NULL: no contact), so the search reads chats only:
-- one trigram index per account on it (0015) for a rare term, the inbox-order walk for a common one.
--
-- Kept by triggers, in the writing transaction, for every writer:
--   contacts AFTER INSERT / UPDATE OF the searched columns, account_id, jid / DELETE: the chat of the (old and
--     new) account + JID gets the new text (NULL when the contact left that JID or was deleted);
--   chats BEFORE INSERT / UPDATE OF account_id, jid: the chat reads its contact's text.
-- The bench seeder (bench/sql/seed.sql) loads with triggers off and recomputes the column the same way.
--
-- The back-fill is one UPDATE of the chats that have a contact (chats ~197k rows / contacts ~790k at 1M leads:
-- measured in docs/INBOX.md). No extension needed: the embedded PostgreSQL applies this file too.

ALTER TABLE chats ADD COLUMN IF NOT EXISTS contact_search text;

CREATE OR REPLACE FUNCTION contact_search_text(name text, last_name text, short_name text, custom_name text,
                                               push_name text, phone text, jid text, email text, company text)
    RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(name,'') || ' ' || coalesce(last_name,'') || ' ' || coalesce(short_name,'') || ' ' ||
           coalesce(custom_name,'') || ' ' || coalesce(push_name,'') || ' ' || coalesce(phone,'') || ' ' || jid ||
           ' ' || coalesce(email,'') || ' ' || coalesce(company,'')
$$;

CREATE OR REPLACE FUNCTION chats_contact_search_from_contact() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    txt text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE chats c SET contact_search = NULL
        WHERE c.account_id = OLD.account_id AND c.jid = OLD.jid AND c.contact_search IS NOT NULL;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.jid IS DISTINCT FROM NEW.jid) THEN
        UPDATE chats c SET contact_search = NULL
        WHERE c.account_id = OLD.account_id AND c.jid = OLD.jid AND c.contact_search IS NOT NULL;
    END IF;
    txt := contact_search_text(NEW.name, NEW.last_name, NEW.short_name, NEW.custom_name, NEW.push_name, NEW.phone,
                               NEW.jid, NEW.email, NEW.company);
    UPDATE chats c SET contact_search = txt
    WHERE c.account_id = NEW.account_id AND c.jid = NEW.jid AND c.contact_search IS DISTINCT FROM txt;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION chats_contact_search_of_chat() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.contact_search := (SELECT contact_search_text(k.name, k.last_name, k.short_name, k.custom_name, k.push_name,
                                                      k.phone, k.jid, k.email, k.company)
                           FROM contacts k WHERE k.account_id = NEW.account_id AND k.jid = NEW.jid);
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS contacts_chat_search_ins ON contacts;
DROP TRIGGER IF EXISTS contacts_chat_search_upd ON contacts;
DROP TRIGGER IF EXISTS contacts_chat_search_del ON contacts;
DROP TRIGGER IF EXISTS chats_contact_search_ins ON chats;
DROP TRIGGER IF EXISTS chats_contact_search_upd ON chats;

CREATE TRIGGER contacts_chat_search_ins AFTER INSERT ON contacts
    FOR EACH ROW EXECUTE FUNCTION chats_contact_search_from_contact();
CREATE TRIGGER contacts_chat_search_upd
    AFTER UPDATE OF account_id, jid, name, last_name, short_name, custom_name, push_name, phone, email, company
    ON contacts FOR EACH ROW
    WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.jid IS DISTINCT FROM NEW.jid
          OR OLD.name IS DISTINCT FROM NEW.name OR OLD.last_name IS DISTINCT FROM NEW.last_name
          OR OLD.short_name IS DISTINCT FROM NEW.short_name OR OLD.custom_name IS DISTINCT FROM NEW.custom_name
          OR OLD.push_name IS DISTINCT FROM NEW.push_name OR OLD.phone IS DISTINCT FROM NEW.phone
          OR OLD.email IS DISTINCT FROM NEW.email OR OLD.company IS DISTINCT FROM NEW.company)
    EXECUTE FUNCTION chats_contact_search_from_contact();
CREATE TRIGGER contacts_chat_search_del AFTER DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION chats_contact_search_from_contact();
CREATE TRIGGER chats_contact_search_ins BEFORE INSERT ON chats
    FOR EACH ROW EXECUTE FUNCTION chats_contact_search_of_chat();
CREATE TRIGGER chats_contact_search_upd BEFORE UPDATE OF account_id, jid ON chats
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.jid IS DISTINCT FROM NEW.jid)
    EXECUTE FUNCTION chats_contact_search_of_chat();

-- Back-fill: chats whose contact exists (the others stay NULL).
UPDATE chats c
SET contact_search = contact_search_text(k.name, k.last_name, k.short_name, k.custom_name, k.push_name, k.phone,
                                         k.jid, k.email, k.company)
FROM contacts k
WHERE k.account_id = c.account_id AND k.jid = c.jid
  AND c.contact_search IS DISTINCT FROM contact_search_text(k.name, k.last_name, k.short_name, k.custom_name,
                                                            k.push_name, k.phone, k.jid, k.email, k.company);
