-- Chats R20–R26 (api.md §4.3, schema.md §5.2, §7). Every statement is scoped to $1 = account_id.
--
-- GET /api/chats pages. Order: pinned first, newest activity first (no activity last), then id DESC, written as the
-- key (is_pinned, last_message_at or -infinity, id) DESC so that a keyset cursor is one row comparison on
-- idx_chats_order (0012). Parameters shared by the page queries: $2 limit (the caller asks one row more than it
-- returns, to know whether a next page exists), $3 offset (applied after the cursor), $4/$5/$6 the cursor = the key
-- of the previous page's last row (pinned, last_message_at|NULL, id; the first page passes true, 9999-12-31 and the
-- max UUID, which sort before every row). The filtered queries add $7 archived (true = include archived chats),
-- $8 device ids|NULL (any-of), $9 tag ids|NULL (the chat's contact — same account + JID — has any of them),
-- $10 unread only, $11 the count cap (clarin/http/totals.py: count(*) over at most $11 + 1 matching rows, never
-- the whole account; 0 = no count). Group, newsletter, broadcast and unresolved LID chats are never listed.
-- Each query answers in one round trip: the total, then the page (LATERAL, after LIMIT the joins run for the
-- page's rows only); a page past the end still returns one row carrying the total (page columns NULL). The contact's
-- fields come from the chat's copy of them (0018: chats.contact_*, kept by triggers), the account's devices are read
-- once: a page row costs its chat only.
-- Empty names read as NULL (omitted on the wire, as Go's omitempty).

-- name: chats_page_inbox_unfiltered
-- The inbox without device, tag or unread filter (the dashboard's default view). The total is the account's
-- inbox_chats counter (0009_account_counters.sql: exactly this predicate, kept in the writing transaction), O(1).
-- the account's few devices, read once (a CTE scan re-reads no buffer), not probed once per row
WITH devs AS MATERIALIZED (SELECT dv.id, dv.name, dv.phone FROM devices dv WHERE dv.account_id = $1)
SELECT t.total, p.id, p.account_id, p.device_id, p.contact_id, p.jid, p.name, p.last_message, p.last_message_at,
       p.unread_count, p.is_archived, p.is_pinned, p.created_at, p.updated_at, p.device_name, p.device_phone,
       p.contact_phone, p.contact_avatar_url, p.contact_custom_name, p.contact_name
FROM (
    SELECT coalesce(sum(a.inbox_chats), 0)::bigint AS total
    FROM account_counters a
    WHERE a.account_id = $1
) t
LEFT JOIN LATERAL (
    SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, NULLIF(c.name, '') AS name, c.last_message,
           c.last_message_at, c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at,
           NULLIF(d.name, '') AS device_name, NULLIF(d.phone, '') AS device_phone,
           NULLIF(c.contact_phone, '') AS contact_phone, NULLIF(c.contact_avatar_url, '') AS contact_avatar_url,
           NULLIF(c.contact_custom_name, '') AS contact_custom_name, NULLIF(c.contact_name, '') AS contact_name
    FROM (
        SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, c.name, c.last_message, c.last_message_at,
               c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at, c.contact_phone, c.contact_avatar_url,
               c.contact_custom_name, c.contact_name
        FROM chats c
        WHERE c.account_id = $1 AND NOT c.is_archived
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid'
          AND (c.is_pinned, COALESCE(c.last_message_at, '-infinity'::timestamptz), c.id)
              < ($4::bool, COALESCE($5::timestamptz, '-infinity'::timestamptz), $6::uuid)
        ORDER BY c.is_pinned DESC, COALESCE(c.last_message_at, '-infinity'::timestamptz) DESC, c.id DESC
        LIMIT $2 OFFSET $3
    ) c
    LEFT JOIN devs d ON d.id = c.device_id
) p ON true
ORDER BY p.is_pinned DESC, COALESCE(p.last_message_at, '-infinity'::timestamptz) DESC, p.id DESC

-- name: chats_page
-- With archived=true or a device or unread filter, without search ($9 tag ids: chats_page_tagged's shape; NULL here). The catch-alls are row filters on the walk
-- of idx_chats_order (rebuilt with INCLUDE columns by 0015) in the custom and the generic plan alike; the capped count
-- walks it in key order too (without the ORDER BY a custom plan at 1M leads counted with a Seq Scan of chats).
-- the account's few devices, read once (a CTE scan re-reads no buffer), not probed once per row
WITH devs AS MATERIALIZED (SELECT dv.id, dv.name, dv.phone FROM devices dv WHERE dv.account_id = $1)
SELECT t.total, p.id, p.account_id, p.device_id, p.contact_id, p.jid, p.name, p.last_message, p.last_message_at,
       p.unread_count, p.is_archived, p.is_pinned, p.created_at, p.updated_at, p.device_name, p.device_phone,
       p.contact_phone, p.contact_avatar_url, p.contact_custom_name, p.contact_name
FROM (
    SELECT count(*) AS total
    FROM (
        SELECT 1
        FROM chats c
        WHERE c.account_id = $1 AND ($7::bool OR NOT c.is_archived)
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid'
          AND ($8::uuid[] IS NULL OR c.device_id = ANY($8::uuid[]))
          AND ($9::uuid[] IS NULL OR EXISTS (
                SELECT 1 FROM contacts k JOIN contact_tags kt ON kt.contact_id = k.id
                WHERE k.account_id = c.account_id AND k.jid = c.jid AND kt.tag_id = ANY($9::uuid[])))
          AND (NOT $10::bool OR c.unread_count > 0)
        ORDER BY c.is_pinned DESC, COALESCE(c.last_message_at, '-infinity'::timestamptz) DESC, c.id DESC
        LIMIT $11::int + 1
    ) capped
    WHERE $11::int > 0
) t
LEFT JOIN LATERAL (
    SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, NULLIF(c.name, '') AS name, c.last_message,
           c.last_message_at, c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at,
           NULLIF(d.name, '') AS device_name, NULLIF(d.phone, '') AS device_phone,
           NULLIF(c.contact_phone, '') AS contact_phone, NULLIF(c.contact_avatar_url, '') AS contact_avatar_url,
           NULLIF(c.contact_custom_name, '') AS contact_custom_name, NULLIF(c.contact_name, '') AS contact_name
    FROM (
        SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, c.name, c.last_message, c.last_message_at,
               c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at, c.contact_phone, c.contact_avatar_url,
               c.contact_custom_name, c.contact_name
        FROM chats c
        WHERE c.account_id = $1 AND ($7::bool OR NOT c.is_archived)
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid'
          AND (c.is_pinned, COALESCE(c.last_message_at, '-infinity'::timestamptz), c.id)
              < ($4::bool, COALESCE($5::timestamptz, '-infinity'::timestamptz), $6::uuid)
          AND ($8::uuid[] IS NULL OR c.device_id = ANY($8::uuid[]))
          AND ($9::uuid[] IS NULL OR EXISTS (
                SELECT 1 FROM contacts k JOIN contact_tags kt ON kt.contact_id = k.id
                WHERE k.account_id = c.account_id AND k.jid = c.jid AND kt.tag_id = ANY($9::uuid[])))
          AND (NOT $10::bool OR c.unread_count > 0)
        ORDER BY c.is_pinned DESC, COALESCE(c.last_message_at, '-infinity'::timestamptz) DESC, c.id DESC
        LIMIT $2 OFFSET $3
    ) c
    LEFT JOIN devs d ON d.id = c.device_id
) p ON true
ORDER BY p.is_pinned DESC, COALESCE(p.last_message_at, '-infinity'::timestamptz) DESC, p.id DESC

-- name: chats_page_tagged
-- tag_ids without search: chats_page's parameters, $9 required. Driven from the tags' contacts (contact_tags, then
-- each contact's chat by the (account_id, jid) key; LATERAL, fenced): O(tagged contacts), sorted here. A walk of
-- the account's chats probing each chat's contact costs O(page / share of chats with a tagged contact), the whole
-- inbox for a rare tag, and its generic plan was worse still: 71,532 blocks at 5k chats (custom 6,025).
-- the account's few devices, read once (a CTE scan re-reads no buffer), not probed once per row
WITH devs AS MATERIALIZED (SELECT dv.id, dv.name, dv.phone FROM devices dv WHERE dv.account_id = $1),
tagged AS MATERIALIZED (  -- once: the page sorts all of them anyway, the count reads them again
    SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, c.name, c.last_message, c.last_message_at,
           c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at, c.contact_phone,
           c.contact_avatar_url, c.contact_custom_name, c.contact_name,
           COALESCE(c.last_message_at, '-infinity'::timestamptz) AS k_time
    FROM (SELECT DISTINCT kt.contact_id FROM contact_tags kt WHERE kt.tag_id = ANY($9::uuid[])) tc
    CROSS JOIN LATERAL (SELECT k.jid FROM contacts k WHERE k.id = tc.contact_id AND k.account_id = $1 OFFSET 0) k
    CROSS JOIN LATERAL (
        SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, c.name, c.last_message, c.last_message_at,
               c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at, c.contact_phone, c.contact_avatar_url,
               c.contact_custom_name, c.contact_name
        FROM chats c
        WHERE c.account_id = $1 AND c.jid = k.jid AND ($7::bool OR NOT c.is_archived)
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid'
          AND ($8::uuid[] IS NULL OR c.device_id = ANY($8::uuid[]))
          AND (NOT $10::bool OR c.unread_count > 0)
        OFFSET 0
    ) c
)
SELECT t.total, p.id, p.account_id, p.device_id, p.contact_id, p.jid, p.name, p.last_message, p.last_message_at,
       p.unread_count, p.is_archived, p.is_pinned, p.created_at, p.updated_at, p.device_name, p.device_phone,
       p.contact_phone, p.contact_avatar_url, p.contact_custom_name, p.contact_name
FROM (
    SELECT count(*) AS total
    FROM (SELECT 1 FROM tagged LIMIT $11::int + 1) capped
    WHERE $11::int > 0
) t
LEFT JOIN LATERAL (
    SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, NULLIF(c.name, '') AS name, c.last_message,
           c.last_message_at, c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at,
           NULLIF(d.name, '') AS device_name, NULLIF(d.phone, '') AS device_phone,
           NULLIF(c.contact_phone, '') AS contact_phone, NULLIF(c.contact_avatar_url, '') AS contact_avatar_url,
           NULLIF(c.contact_custom_name, '') AS contact_custom_name, NULLIF(c.contact_name, '') AS contact_name
    FROM (
        SELECT g.id, g.account_id, g.device_id, g.contact_id, g.jid, g.name, g.last_message, g.last_message_at,
               g.unread_count, g.is_archived, g.is_pinned, g.created_at, g.updated_at, g.contact_phone,
               g.contact_avatar_url, g.contact_custom_name, g.contact_name
        FROM tagged g
        WHERE (g.is_pinned, g.k_time, g.id) < ($4::bool, COALESCE($5::timestamptz, '-infinity'::timestamptz), $6::uuid)
        ORDER BY g.is_pinned DESC, g.k_time DESC, g.id DESC
        LIMIT $2 OFFSET $3
    ) c
    LEFT JOIN devs d ON d.id = c.device_id
) p ON true
ORDER BY p.is_pinned DESC, COALESCE(p.last_message_at, '-infinity'::timestamptz) DESC, p.id DESC

-- name: chats_page_search
-- With search: chats_page's parameters plus $12 = escaped ILIKE pattern. A chat matches by its own name + JID or by
-- its contact's search expression (name, last/short/custom/push name, phone, JID, email, company), which 0014 keeps
-- on the chat itself (chats.contact_search, by triggers): the search reads chats only, never a contact. A rare term
-- is a BitmapOr of the account's two trigram indexes (idx_chats_search_acct, idx_chats_contact_search_acct, 0012 /
-- 0015), then a sort of its few hits; a common one walks idx_chats_order (0015: INCLUDE the filtered columns) as
-- an Index Only Scan that filters on the index tuple, O(page / selectivity) whatever the account's size. Which is cheaper depends on the term: custom plans only
-- (clarin/messaging/chats.py, CUSTOM_PLAN_QUERIES). The count reads at most $11 + 1 matches (exact up to the cap).
-- the account's few devices, read once (a CTE scan re-reads no buffer), not probed once per row
WITH devs AS MATERIALIZED (SELECT dv.id, dv.name, dv.phone FROM devices dv WHERE dv.account_id = $1)
SELECT t.total, p.id, p.account_id, p.device_id, p.contact_id, p.jid, p.name, p.last_message, p.last_message_at,
       p.unread_count, p.is_archived, p.is_pinned, p.created_at, p.updated_at, p.device_name, p.device_phone,
       p.contact_phone, p.contact_avatar_url, p.contact_custom_name, p.contact_name
FROM (
    SELECT count(*) AS total
    FROM (
        SELECT 1
        FROM chats c
        WHERE c.account_id = $1 AND ($7::bool OR NOT c.is_archived)
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid'
          AND ($8::uuid[] IS NULL OR c.device_id = ANY($8::uuid[]))
          AND ($9::uuid[] IS NULL OR EXISTS (
                SELECT 1 FROM contacts k JOIN contact_tags kt ON kt.contact_id = k.id
                WHERE k.account_id = c.account_id AND k.jid = c.jid AND kt.tag_id = ANY($9::uuid[])))
          AND (NOT $10::bool OR c.unread_count > 0)
          AND ((coalesce(c.name,'') || ' ' || c.jid) ILIKE $12::text OR c.contact_search ILIKE $12::text)
        ORDER BY c.is_pinned DESC, COALESCE(c.last_message_at, '-infinity'::timestamptz) DESC, c.id DESC
        LIMIT $11::int + 1
    ) capped
    WHERE $11::int > 0
) t
LEFT JOIN LATERAL (
    SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, NULLIF(c.name, '') AS name, c.last_message,
           c.last_message_at, c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at,
           NULLIF(d.name, '') AS device_name, NULLIF(d.phone, '') AS device_phone,
           NULLIF(c.contact_phone, '') AS contact_phone, NULLIF(c.contact_avatar_url, '') AS contact_avatar_url,
           NULLIF(c.contact_custom_name, '') AS contact_custom_name, NULLIF(c.contact_name, '') AS contact_name
    FROM (
        SELECT c.id
        FROM chats c
        WHERE c.account_id = $1 AND ($7::bool OR NOT c.is_archived)
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid'
          AND (c.is_pinned, COALESCE(c.last_message_at, '-infinity'::timestamptz), c.id)
              < ($4::bool, COALESCE($5::timestamptz, '-infinity'::timestamptz), $6::uuid)
          AND ($8::uuid[] IS NULL OR c.device_id = ANY($8::uuid[]))
          AND ($9::uuid[] IS NULL OR EXISTS (
                SELECT 1 FROM contacts k JOIN contact_tags kt ON kt.contact_id = k.id
                WHERE k.account_id = c.account_id AND k.jid = c.jid AND kt.tag_id = ANY($9::uuid[])))
          AND (NOT $10::bool OR c.unread_count > 0)
          AND ((coalesce(c.name,'') || ' ' || c.jid) ILIKE $12::text OR c.contact_search ILIKE $12::text)
        ORDER BY c.is_pinned DESC, COALESCE(c.last_message_at, '-infinity'::timestamptz) DESC, c.id DESC
        LIMIT $2 OFFSET $3
    ) i
    JOIN chats c ON c.id = i.id AND c.account_id = $1
    LEFT JOIN devs d ON d.id = c.device_id
) p ON true
ORDER BY p.is_pinned DESC, COALESCE(p.last_message_at, '-infinity'::timestamptz) DESC, p.id DESC

-- name: chats_get
-- R23 and the chat re-read after R21: the chat with its device and contact join fields.
SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, NULLIF(c.name, '') AS name, c.last_message,
       c.last_message_at, c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at,
       NULLIF(d.name, '') AS device_name, NULLIF(d.phone, '') AS device_phone,
       NULLIF(k.phone, '') AS contact_phone, NULLIF(k.avatar_url, '') AS contact_avatar_url,
       NULLIF(k.custom_name, '') AS contact_custom_name, NULLIF(k.name, '') AS contact_name
FROM chats c
LEFT JOIN devices d ON d.id = c.device_id
LEFT JOIN contacts k ON k.account_id = c.account_id AND k.jid = c.jid
WHERE c.id = $2 AND c.account_id = $1

-- name: chats_contact_of_jid
-- R23: the contact with the chat's JID and its structured_tags, in one statement (tags as a JSON array).
SELECT c.id, c.account_id, c.device_id, c.jid, c.phone, c.name, c.last_name, c.short_name, c.custom_name,
       c.push_name, c.avatar_url, c.email, c.company, c.age, NULLIF(array_remove(c.tags, NULL), '{}') AS tags,
       c.notes, c.source, c.is_group, c.created_at, c.updated_at,
       (SELECT jsonb_agg(jsonb_build_object('id', t.id, 'account_id', t.account_id, 'name', t.name, 'color', t.color,
                                            'created_at', t.created_at, 'updated_at', t.updated_at)
                         ORDER BY t.name, t.id)
        FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id
        WHERE ct.contact_id = c.id AND t.account_id = $1) AS structured_tags
FROM contacts c
WHERE c.account_id = $1 AND c.jid = $2

-- name: chats_lead_of_jid
-- R23: the lead with the chat's JID, its stage fields and structured_tags, in one statement.
SELECT l.id, l.account_id, l.contact_id, l.jid, l.name, l.last_name, l.short_name, l.phone, l.email,
       l.company, l.age, l.status, l.pipeline_id, l.stage_id, l.source, l.notes, l.tags, l.custom_fields,
       l.assigned_to, l.created_at, l.updated_at,
       ps.name AS stage_name, ps.color AS stage_color, ps.position AS stage_position,
       (SELECT jsonb_agg(jsonb_build_object('id', t.id, 'account_id', t.account_id, 'name', t.name, 'color', t.color,
                                            'created_at', t.created_at, 'updated_at', t.updated_at)
                         ORDER BY t.name, t.id)
        FROM lead_tags lt JOIN tags t ON t.id = lt.tag_id
        WHERE lt.lead_id = l.id AND t.account_id = $1) AS structured_tags
FROM leads l
LEFT JOIN pipeline_stages ps ON ps.id = l.stage_id
WHERE l.account_id = $1 AND l.jid = $2

-- name: chats_mark_read
-- R25: unread reset; the id back only when the chat is the account's.
UPDATE chats c SET unread_count = 0, updated_at = now()
WHERE c.id = $2 AND c.account_id = $1
RETURNING c.id

-- name: chats_delete
-- R26 / R22 by ids: the account's chats among $2 (messages, reactions and poll rows go by ON DELETE CASCADE).
DELETE FROM chats c
WHERE c.account_id = $1 AND c.id = ANY($2::uuid[])
RETURNING c.id

-- name: chats_delete_all
-- R22 delete_all: every chat of the account (and, by cascade, their messages); the number deleted.
WITH gone AS (
    DELETE FROM chats c WHERE c.account_id = $1 RETURNING c.id
)
SELECT count(*) AS count FROM gone
