-- Chats R20–R26 (api.md §4.3, schema.md §5.2, §7). Every statement is scoped to $1 = account_id.
--
-- List filters shared by the page queries (not chats_page_inbox_unfiltered): $2 device ids|NULL (any-of), $3 tag ids|NULL (the chat's
-- contact — same account + JID — has any of them), $4 unread only, $5 limit, $6 offset. Group, newsletter,
-- broadcast and unresolved LID chats are never listed. Order: pinned first, newest activity, then id (stable).
-- Each query answers in one round trip: the total, then the page (LATERAL, after LIMIT the joins run for the
-- page's rows only); a page past the end still returns one row carrying the total (page columns NULL).
-- Empty names read as NULL (omitted on the wire, as Go's omitempty).

-- name: chats_page_inbox
-- archived=false (the dashboard's inbox) with a device, tag or unread filter (exact count(*); without one the
-- caller uses chats_page_inbox_unfiltered): walks idx_chats_inbox
-- (account_id, is_pinned DESC, last_message_at DESC NULLS LAST, id) WHERE NOT is_archived in order.
SELECT t.total, p.id, p.account_id, p.device_id, p.contact_id, p.jid, p.name, p.last_message, p.last_message_at,
       p.unread_count, p.is_archived, p.is_pinned, p.created_at, p.updated_at, p.device_name, p.device_phone,
       p.contact_phone, p.contact_avatar_url, p.contact_custom_name, p.contact_name
FROM (
    SELECT count(*) AS total
    FROM chats c
    WHERE c.account_id = $1 AND NOT c.is_archived
      AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
      AND c.jid NOT LIKE '%@lid'
      AND ($2::uuid[] IS NULL OR c.device_id = ANY($2::uuid[]))
      AND ($3::uuid[] IS NULL OR EXISTS (
            SELECT 1 FROM contacts k JOIN contact_tags kt ON kt.contact_id = k.id
            WHERE k.account_id = c.account_id AND k.jid = c.jid AND kt.tag_id = ANY($3::uuid[])))
      AND (NOT $4::bool OR c.unread_count > 0)
) t
LEFT JOIN LATERAL (
    SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, NULLIF(c.name, '') AS name, c.last_message,
           c.last_message_at, c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at,
           NULLIF(d.name, '') AS device_name, NULLIF(d.phone, '') AS device_phone,
           NULLIF(k.phone, '') AS contact_phone, NULLIF(k.avatar_url, '') AS contact_avatar_url,
           NULLIF(k.custom_name, '') AS contact_custom_name, NULLIF(k.name, '') AS contact_name
    FROM (
        SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, c.name, c.last_message, c.last_message_at,
               c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at
        FROM chats c
        WHERE c.account_id = $1 AND NOT c.is_archived
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid'
          AND ($2::uuid[] IS NULL OR c.device_id = ANY($2::uuid[]))
          AND ($3::uuid[] IS NULL OR EXISTS (
                SELECT 1 FROM contacts k JOIN contact_tags kt ON kt.contact_id = k.id
                WHERE k.account_id = c.account_id AND k.jid = c.jid AND kt.tag_id = ANY($3::uuid[])))
          AND (NOT $4::bool OR c.unread_count > 0)
        ORDER BY c.is_pinned DESC, c.last_message_at DESC NULLS LAST, c.id
        LIMIT $5 OFFSET $6
    ) c
    LEFT JOIN devices d ON d.id = c.device_id
    LEFT JOIN contacts k ON k.account_id = c.account_id AND k.jid = c.jid
) p ON true
ORDER BY p.is_pinned DESC, p.last_message_at DESC NULLS LAST, p.id

-- name: chats_page_inbox_unfiltered
-- The inbox without device, tag or unread filter (the dashboard's default view): $2 limit, $3 offset. The page as
-- chats_page_inbox; the total is the account's inbox_chats counter (0009_account_counters.sql: exactly this
-- predicate, kept in the writing transaction), O(1) instead of a count(*) of the inbox (5,070 blocks at 50k chats).
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
           NULLIF(k.phone, '') AS contact_phone, NULLIF(k.avatar_url, '') AS contact_avatar_url,
           NULLIF(k.custom_name, '') AS contact_custom_name, NULLIF(k.name, '') AS contact_name
    FROM (
        SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, c.name, c.last_message, c.last_message_at,
               c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at
        FROM chats c
        WHERE c.account_id = $1 AND NOT c.is_archived
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid'
        ORDER BY c.is_pinned DESC, c.last_message_at DESC NULLS LAST, c.id
        LIMIT $2 OFFSET $3
    ) c
    LEFT JOIN devices d ON d.id = c.device_id
    LEFT JOIN contacts k ON k.account_id = c.account_id AND k.jid = c.jid
) p ON true
ORDER BY p.is_pinned DESC, p.last_message_at DESC NULLS LAST, p.id

-- name: chats_page_all
-- archived=true: archived and non-archived chats together (as the original; it does not restrict to archived).
SELECT t.total, p.id, p.account_id, p.device_id, p.contact_id, p.jid, p.name, p.last_message, p.last_message_at,
       p.unread_count, p.is_archived, p.is_pinned, p.created_at, p.updated_at, p.device_name, p.device_phone,
       p.contact_phone, p.contact_avatar_url, p.contact_custom_name, p.contact_name
FROM (
    SELECT count(*) AS total
    FROM chats c
    WHERE c.account_id = $1
      AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
      AND c.jid NOT LIKE '%@lid'
      AND ($2::uuid[] IS NULL OR c.device_id = ANY($2::uuid[]))
      AND ($3::uuid[] IS NULL OR EXISTS (
            SELECT 1 FROM contacts k JOIN contact_tags kt ON kt.contact_id = k.id
            WHERE k.account_id = c.account_id AND k.jid = c.jid AND kt.tag_id = ANY($3::uuid[])))
      AND (NOT $4::bool OR c.unread_count > 0)
) t
LEFT JOIN LATERAL (
    SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, NULLIF(c.name, '') AS name, c.last_message,
           c.last_message_at, c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at,
           NULLIF(d.name, '') AS device_name, NULLIF(d.phone, '') AS device_phone,
           NULLIF(k.phone, '') AS contact_phone, NULLIF(k.avatar_url, '') AS contact_avatar_url,
           NULLIF(k.custom_name, '') AS contact_custom_name, NULLIF(k.name, '') AS contact_name
    FROM (
        SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, c.name, c.last_message, c.last_message_at,
               c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at
        FROM chats c
        WHERE c.account_id = $1
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid'
          AND ($2::uuid[] IS NULL OR c.device_id = ANY($2::uuid[]))
          AND ($3::uuid[] IS NULL OR EXISTS (
                SELECT 1 FROM contacts k JOIN contact_tags kt ON kt.contact_id = k.id
                WHERE k.account_id = c.account_id AND k.jid = c.jid AND kt.tag_id = ANY($3::uuid[])))
          AND (NOT $4::bool OR c.unread_count > 0)
        ORDER BY c.is_pinned DESC, c.last_message_at DESC NULLS LAST, c.id
        LIMIT $5 OFFSET $6
    ) c
    LEFT JOIN devices d ON d.id = c.device_id
    LEFT JOIN contacts k ON k.account_id = c.account_id AND k.jid = c.jid
) p ON true
ORDER BY p.is_pinned DESC, p.last_message_at DESC NULLS LAST, p.id

-- name: chats_page_search
-- With search: $7 archived (true = include archived), $8 = escaped ILIKE pattern. The candidate JIDs come from
-- two trigram-indexed sources (0002_search_trigram.sql, expressions repeated verbatim): the chat's name + JID
-- (idx_chats_search_trgm) and the account's contacts (idx_contacts_search_trgm: name, last/short/custom/push
-- name, phone, JID, email, company); the chats are then fetched by the (account_id, jid) unique key.
SELECT t.total, p.id, p.account_id, p.device_id, p.contact_id, p.jid, p.name, p.last_message, p.last_message_at,
       p.unread_count, p.is_archived, p.is_pinned, p.created_at, p.updated_at, p.device_name, p.device_phone,
       p.contact_phone, p.contact_avatar_url, p.contact_custom_name, p.contact_name
FROM (
    SELECT count(*) AS total
    FROM chats c
    WHERE c.account_id = $1 AND ($7::bool OR NOT c.is_archived)
      AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
      AND c.jid NOT LIKE '%@lid'
      AND ($2::uuid[] IS NULL OR c.device_id = ANY($2::uuid[]))
      AND ($3::uuid[] IS NULL OR EXISTS (
            SELECT 1 FROM contacts k JOIN contact_tags kt ON kt.contact_id = k.id
            WHERE k.account_id = c.account_id AND k.jid = c.jid AND kt.tag_id = ANY($3::uuid[])))
      AND (NOT $4::bool OR c.unread_count > 0)
      AND c.jid IN (
            SELECT s.jid FROM chats s
            WHERE s.account_id = $1 AND (coalesce(s.name,'') || ' ' || s.jid) ILIKE $8::text
            UNION
            SELECT k.jid FROM contacts k
            WHERE k.account_id = $1
              AND (coalesce(k.name,'') || ' ' || coalesce(k.last_name,'') || ' ' || coalesce(k.short_name,'') || ' ' || coalesce(k.custom_name,'') || ' ' || coalesce(k.push_name,'') || ' ' || coalesce(k.phone,'') || ' ' || k.jid || ' ' || coalesce(k.email,'') || ' ' || coalesce(k.company,'')) ILIKE $8::text)
) t
LEFT JOIN LATERAL (
    SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, NULLIF(c.name, '') AS name, c.last_message,
           c.last_message_at, c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at,
           NULLIF(d.name, '') AS device_name, NULLIF(d.phone, '') AS device_phone,
           NULLIF(k.phone, '') AS contact_phone, NULLIF(k.avatar_url, '') AS contact_avatar_url,
           NULLIF(k.custom_name, '') AS contact_custom_name, NULLIF(k.name, '') AS contact_name
    FROM (
        SELECT c.id, c.account_id, c.device_id, c.contact_id, c.jid, c.name, c.last_message, c.last_message_at,
               c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at
        FROM chats c
        WHERE c.account_id = $1 AND ($7::bool OR NOT c.is_archived)
          AND c.jid NOT LIKE '%@g.us' AND c.jid NOT LIKE '%@newsletter' AND c.jid NOT LIKE '%@broadcast'
          AND c.jid NOT LIKE '%@lid'
          AND ($2::uuid[] IS NULL OR c.device_id = ANY($2::uuid[]))
          AND ($3::uuid[] IS NULL OR EXISTS (
                SELECT 1 FROM contacts k JOIN contact_tags kt ON kt.contact_id = k.id
                WHERE k.account_id = c.account_id AND k.jid = c.jid AND kt.tag_id = ANY($3::uuid[])))
          AND (NOT $4::bool OR c.unread_count > 0)
          AND c.jid IN (
                SELECT s.jid FROM chats s
                WHERE s.account_id = $1 AND (coalesce(s.name,'') || ' ' || s.jid) ILIKE $8::text
                UNION
                SELECT k.jid FROM contacts k
                WHERE k.account_id = $1
                  AND (coalesce(k.name,'') || ' ' || coalesce(k.last_name,'') || ' ' || coalesce(k.short_name,'') || ' ' || coalesce(k.custom_name,'') || ' ' || coalesce(k.push_name,'') || ' ' || coalesce(k.phone,'') || ' ' || k.jid || ' ' || coalesce(k.email,'') || ' ' || coalesce(k.company,'')) ILIKE $8::text)
        ORDER BY c.is_pinned DESC, c.last_message_at DESC NULLS LAST, c.id
        LIMIT $5 OFFSET $6
    ) c
    LEFT JOIN devices d ON d.id = c.device_id
    LEFT JOIN contacts k ON k.account_id = c.account_id AND k.jid = c.jid
) p ON true
ORDER BY p.is_pinned DESC, p.last_message_at DESC NULLS LAST, p.id

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
