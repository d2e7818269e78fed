-- Contacts (spec api.md §4.12, schema.md §3.5, §5.2, §5.5, §5.6). Every statement is scoped to $1 = account_id.
-- Contact columns are listed in the order of the wire struct; legacy `tags` never carries NULL elements
-- (the driver cannot read them) and an empty array reads as NULL (omitted, as Go's omitempty).

-- GET /api/contacts (R75) pages. Order: display name (first non-null of custom_name, name, push_name, phone) ASC
-- NULLS LAST, then id, written as the key (display name IS NULL, display name or '', id) so that a keyset cursor
-- is one row comparison on idx_contacts_keyset (0012): $5/$6/$7 = the cursor (the last row of the previous page;
-- the first page passes false, '', the nil UUID, which sorts before every row). ``offset`` applies after the cursor.
-- Each page statement reads $3 + 1 rows: ``more`` says whether a next page exists, ``last_*`` is the key of the
-- page's last row (the next cursor). ``body`` is the page's JSON array of contacts with their tags (wire_contact,
-- 0008_wire_json.sql), built by PostgreSQL. One statement per filter shape (clarin/crm/contact_reads.py picks it),
-- so no statement has a catch-all whose generic plan differs from its custom plan on the index it walks.
-- Filtered totals are capped (clarin/http/totals.py): count(*) over at most $cap + 1 matching rows, never the
-- whole account; ``total`` is NULL when the caller has it (clarin.cache.totals) or needs none ($cap = 0).

-- name: contacts_page_unfiltered
-- No filter: $2 is_group, $3 limit, $4 offset, $5-$7 cursor. The total is the account's counter slots
-- (0009_account_counters.sql), exact and O(1).
WITH page AS (
    SELECT c AS contact, c.id,
           (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL) AS k_null,
           COALESCE(c.custom_name, c.name, c.push_name, c.phone, '') AS k_text,
           row_number() OVER (ORDER BY (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
                                       COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id) AS rn
    FROM contacts c
    WHERE c.account_id = $1 AND c.is_group = $2
      AND ((COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
           COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id) > ($5::bool, $6::text, $7::uuid)
    ORDER BY (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
             COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id
    LIMIT $3::int + 1 OFFSET $4::int
)
SELECT (SELECT coalesce(sum(CASE WHEN $2::bool THEN a.group_contacts ELSE a.contacts - a.group_contacts END), 0)
        FROM account_counters a WHERE a.account_id = $1)::bigint AS total,
       '[' || coalesce(string_agg(wire_contact(p.contact, tg.list), ',' ORDER BY p.rn)
                           FILTER (WHERE p.rn <= $3::int + $4::int), '') || ']' AS body,
       count(p.id) > $3::int AS more,
       bool_or(p.k_null) FILTER (WHERE p.rn = $3::int + $4::int) AS last_null,
       min(p.k_text) FILTER (WHERE p.rn = $3::int + $4::int) AS last_text,
       (array_agg(p.id) FILTER (WHERE p.rn = $3::int + $4::int))[1] AS last_id
FROM page p
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_tag(tag), ',' ORDER BY tag.name, tag.id) || ']' AS list
    FROM contact_tags ct
    JOIN tags tag ON tag.id = ct.tag_id
    WHERE ct.contact_id = p.id AND tag.account_id = $1 AND p.rn <= $3::int + $4::int
) tg ON true

-- name: contacts_page
-- Device, phone or legacy-tag filters without search or tag ids: $2 is_group, $3 limit, $4 offset, $5-$7 cursor,
-- $8 device_id|NULL, $9 has_phone, $10 legacy tags|NULL (any-of), $11 count cap (0: no count).
-- The catch-alls are row filters on the walk of idx_contacts_keyset in both the custom and the generic plan. The
-- capped count walks the same index in key order (?has_phone: an Index Only Scan filtering on the INCLUDEd phone):
-- without the ORDER BY, the generic plan counted ?has_phone with a Seq Scan of contacts (1M leads: 13,215 blocks,
-- custom 1,488) and the custom plan of a small account too.
WITH t AS (
    SELECT count(*) AS total
    FROM (
        SELECT 1
        FROM contacts c
        WHERE c.account_id = $1 AND c.is_group = $2
          AND ($8::uuid IS NULL OR c.device_id = $8::uuid)
          AND (NOT $9::bool OR (c.phone IS NOT NULL AND c.phone <> ''))
          AND ($10::text[] IS NULL OR c.tags && $10::text[])
        ORDER BY (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
                 COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id
        LIMIT $11::int + 1
    ) capped
    WHERE $11::int > 0
), page AS (
    SELECT c AS contact, c.id,
           (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL) AS k_null,
           COALESCE(c.custom_name, c.name, c.push_name, c.phone, '') AS k_text,
           row_number() OVER (ORDER BY (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
                                       COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id) AS rn
    FROM contacts c
    WHERE c.account_id = $1 AND c.is_group = $2
      AND ((COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
           COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id) > ($5::bool, $6::text, $7::uuid)
      AND ($8::uuid IS NULL OR c.device_id = $8::uuid)
      AND (NOT $9::bool OR (c.phone IS NOT NULL AND c.phone <> ''))
      AND ($10::text[] IS NULL OR c.tags && $10::text[])
    ORDER BY (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
             COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id
    LIMIT $3::int + 1 OFFSET $4::int
)
SELECT (SELECT t.total FROM t) AS total,
       '[' || coalesce(string_agg(wire_contact(p.contact, tg.list), ',' ORDER BY p.rn)
                           FILTER (WHERE p.rn <= $3::int + $4::int), '') || ']' AS body,
       count(p.id) > $3::int AS more,
       bool_or(p.k_null) FILTER (WHERE p.rn = $3::int + $4::int) AS last_null,
       min(p.k_text) FILTER (WHERE p.rn = $3::int + $4::int) AS last_text,
       (array_agg(p.id) FILTER (WHERE p.rn = $3::int + $4::int))[1] AS last_id
FROM page p
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_tag(tag), ',' ORDER BY tag.name, tag.id) || ']' AS list
    FROM contact_tags ct
    JOIN tags tag ON tag.id = ct.tag_id
    WHERE ct.contact_id = p.id AND tag.account_id = $1 AND p.rn <= $3::int + $4::int
) tg ON true

-- name: contacts_page_tagged_filtered
-- Structured tag ids with device, phone or legacy-tag filters, without search: contacts_page's parameters with
-- $11 = tag ids (any-of, required) and $12 = the count cap. The page is driven from the tag's contacts (LATERAL: a
-- nested loop from contact_tags, O(tagged contacts)), never a walk of the account probing contact_tags per row
-- (the planner misjudges ANY(array) selectivity: 81k blocks at 30k contacts for a 102-contact tag).
WITH t AS (
    SELECT count(*) AS total
    FROM (
        SELECT 1
        FROM (SELECT DISTINCT ct.contact_id FROM contact_tags ct WHERE ct.tag_id = ANY($11::uuid[])) tagged
        CROSS JOIN LATERAL (SELECT c.device_id, c.phone, c.tags FROM contacts c
                            WHERE c.id = tagged.contact_id AND c.account_id = $1 AND c.is_group = $2
                            OFFSET 0) c  -- a fence, as the page's
        WHERE true
          AND ($8::uuid IS NULL OR c.device_id = $8::uuid)
          AND (NOT $9::bool OR (c.phone IS NOT NULL AND c.phone <> ''))
          AND ($10::text[] IS NULL OR c.tags && $10::text[])
        LIMIT $12::int + 1
    ) capped
    WHERE $12::int > 0
), page AS (
    SELECT l.contact, l.id, l.k_null, l.k_text, row_number() OVER (ORDER BY l.k_null, l.k_text, l.id) AS rn
    FROM (SELECT DISTINCT ct.contact_id FROM contact_tags ct WHERE ct.tag_id = ANY($11::uuid[])) tagged
    CROSS JOIN LATERAL (
        SELECT c AS contact, c.id, (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL) AS k_null,
               COALESCE(c.custom_name, c.name, c.push_name, c.phone, '') AS k_text
        FROM contacts c
        WHERE c.id = tagged.contact_id AND c.account_id = $1 AND c.is_group = $2
          AND ($8::uuid IS NULL OR c.device_id = $8::uuid)
          AND (NOT $9::bool OR (c.phone IS NOT NULL AND c.phone <> ''))
          AND ($10::text[] IS NULL OR c.tags && $10::text[])
        OFFSET 0  -- a fence: not flattened into a hash join against a walk of the whole account
    ) l
    WHERE (l.k_null, l.k_text, l.id) > ($5::bool, $6::text, $7::uuid)
    ORDER BY l.k_null, l.k_text, l.id
    LIMIT $3::int + 1 OFFSET $4::int
)
SELECT (SELECT t.total FROM t) AS total,
       '[' || coalesce(string_agg(wire_contact(p.contact, tg.list), ',' ORDER BY p.rn)
                           FILTER (WHERE p.rn <= $3::int + $4::int), '') || ']' AS body,
       count(p.id) > $3::int AS more,
       bool_or(p.k_null) FILTER (WHERE p.rn = $3::int + $4::int) AS last_null,
       min(p.k_text) FILTER (WHERE p.rn = $3::int + $4::int) AS last_text,
       (array_agg(p.id) FILTER (WHERE p.rn = $3::int + $4::int))[1] AS last_id
FROM page p
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_tag(tag), ',' ORDER BY tag.name, tag.id) || ']' AS list
    FROM contact_tags ct
    JOIN tags tag ON tag.id = ct.tag_id
    WHERE ct.contact_id = p.id AND tag.account_id = $1 AND p.rn <= $3::int + $4::int
) tg ON true

-- name: contacts_page_tagged
-- Structured tag ids only (the dashboard's tag filter): $2 is_group, $3 limit, $4 offset, $5-$7 cursor, $8 tag ids
-- (any-of), $9 count cap. The page walks idx_contacts_keyset from the cursor (Index Only Scan: ids and keys only)
-- and keeps the ids found in the hashed set of the tags' contacts (idx_contact_tags_tag, read once, index only):
-- about page / (share of tagged contacts) index entries, flat with the account's size; then the page's rows.
-- "IS TRUE" keeps the IN a hashed SubPlan and LIMIT (SELECT ...) fences the walk (as leads_page_tag: without
-- them the planner joins every tagged contact, or probes contact_tags per contact of the account). The capped
-- count goes from the tag's contacts (LATERAL, fenced): O(min(tagged, cap)).
WITH t AS (
    SELECT count(*) AS total
    FROM (
        SELECT 1
        FROM (SELECT DISTINCT ct.contact_id FROM contact_tags ct WHERE ct.tag_id = ANY($8::uuid[])) tagged
        CROSS JOIN LATERAL (SELECT c.id FROM contacts c
                            WHERE c.id = tagged.contact_id AND c.account_id = $1 AND c.is_group = $2
                            OFFSET 0) c
        LIMIT $9::int + 1
    ) capped
    WHERE $9::int > 0
), ids AS (
    SELECT w.id, w.k_null, w.k_text, row_number() OVER (ORDER BY w.k_null, w.k_text, w.id) AS rn
    FROM (SELECT c.id, (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL) AS k_null,
                 COALESCE(c.custom_name, c.name, c.push_name, c.phone, '') AS k_text
          FROM contacts c
          WHERE c.account_id = $1 AND c.is_group = $2
            AND ((COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
                 COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id) > ($5::bool, $6::text, $7::uuid)
          ORDER BY (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
                   COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id
          LIMIT (SELECT 1000000000)) w
    WHERE (w.id IN (SELECT ct.contact_id FROM contact_tags ct WHERE ct.tag_id = ANY($8::uuid[]))) IS TRUE
    ORDER BY w.k_null, w.k_text, w.id
    LIMIT $3::int + 1 OFFSET $4::int
), page AS (
    SELECT c AS contact, i.id, i.k_null, i.k_text, i.rn
    FROM ids i
    JOIN contacts c ON c.id = i.id AND c.account_id = $1
)
SELECT (SELECT t.total FROM t) AS total,
       '[' || coalesce(string_agg(wire_contact(p.contact, tg.list), ',' ORDER BY p.rn)
                           FILTER (WHERE p.rn <= $3::int + $4::int), '') || ']' AS body,
       count(p.id) > $3::int AS more,
       bool_or(p.k_null) FILTER (WHERE p.rn = $3::int + $4::int) AS last_null,
       min(p.k_text) FILTER (WHERE p.rn = $3::int + $4::int) AS last_text,
       (array_agg(p.id) FILTER (WHERE p.rn = $3::int + $4::int))[1] AS last_id
FROM page p
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_tag(tag), ',' ORDER BY tag.name, tag.id) || ']' AS list
    FROM contact_tags ct
    JOIN tags tag ON tag.id = ct.tag_id
    WHERE ct.contact_id = p.id AND tag.account_id = $1 AND p.rn <= $3::int + $4::int
) tg ON true

-- name: contacts_page_search
-- Search only (the dashboard's search box): $2 is_group, $3 limit, $4 offset, $5-$7 cursor, $8 = escaped ILIKE
-- pattern over the trigram expression of 0002/0012 (repeated verbatim, alias-prefixed), $9 count cap. Every column
-- the walk reads is in idx_contacts_keyset, so the page's ids come from an Index Only Scan that filters on the
-- index tuple (O(page / selectivity) index pages), or, for a rare term, from idx_contacts_search_acct (GIN,
-- account first): the custom plan picks by the term's estimated matches. The capped count the same way.
WITH t AS (
    SELECT count(*) AS total
    FROM (
        SELECT 1
        FROM contacts c
        WHERE c.account_id = $1 AND c.is_group = $2
          AND (coalesce(c.name,'') || ' ' || coalesce(c.last_name,'') || ' ' || coalesce(c.short_name,'') || ' ' || coalesce(c.custom_name,'') || ' ' || coalesce(c.push_name,'') || ' ' || coalesce(c.phone,'') || ' ' || c.jid || ' ' || coalesce(c.email,'') || ' ' || coalesce(c.company,'')) ILIKE $8::text
        LIMIT $9::int + 1
    ) capped
    WHERE $9::int > 0
), ids AS (
    SELECT c.id,
           (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL) AS k_null,
           COALESCE(c.custom_name, c.name, c.push_name, c.phone, '') AS k_text,
           row_number() OVER (ORDER BY (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
                                       COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id) AS rn
    FROM contacts c
    WHERE c.account_id = $1 AND c.is_group = $2
      AND ((COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
           COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id) > ($5::bool, $6::text, $7::uuid)
      AND (coalesce(c.name,'') || ' ' || coalesce(c.last_name,'') || ' ' || coalesce(c.short_name,'') || ' ' || coalesce(c.custom_name,'') || ' ' || coalesce(c.push_name,'') || ' ' || coalesce(c.phone,'') || ' ' || c.jid || ' ' || coalesce(c.email,'') || ' ' || coalesce(c.company,'')) ILIKE $8::text
    ORDER BY (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
             COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id
    LIMIT $3::int + 1 OFFSET $4::int
), page AS (
    SELECT c AS contact, i.id, i.k_null, i.k_text, i.rn
    FROM ids i
    JOIN contacts c ON c.id = i.id AND c.account_id = $1
)
SELECT (SELECT t.total FROM t) AS total,
       '[' || coalesce(string_agg(wire_contact(p.contact, tg.list), ',' ORDER BY p.rn)
                           FILTER (WHERE p.rn <= $3::int + $4::int), '') || ']' AS body,
       count(p.id) > $3::int AS more,
       bool_or(p.k_null) FILTER (WHERE p.rn = $3::int + $4::int) AS last_null,
       min(p.k_text) FILTER (WHERE p.rn = $3::int + $4::int) AS last_text,
       (array_agg(p.id) FILTER (WHERE p.rn = $3::int + $4::int))[1] AS last_id
FROM page p
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_tag(tag), ',' ORDER BY tag.name, tag.id) || ']' AS list
    FROM contact_tags ct
    JOIN tags tag ON tag.id = ct.tag_id
    WHERE ct.contact_id = p.id AND tag.account_id = $1 AND p.rn <= $3::int + $4::int
) tg ON true

-- name: contacts_page_search_filtered
-- Search with device, phone or tag filters: contacts_page's parameters ($8-$11 filters, $12 count cap) plus
-- $13 = escaped ILIKE pattern. The filters read columns outside idx_contacts_keyset, so rows are fetched.
WITH t AS (
    SELECT count(*) AS total
    FROM (
        SELECT 1
        FROM contacts c
        WHERE c.account_id = $1 AND c.is_group = $2
          AND ($8::uuid IS NULL OR c.device_id = $8::uuid)
          AND (NOT $9::bool OR (c.phone IS NOT NULL AND c.phone <> ''))
          AND ($10::text[] IS NULL OR c.tags && $10::text[])
          AND ($11::uuid[] IS NULL OR c.id IN (SELECT ct.contact_id FROM contact_tags ct WHERE ct.tag_id = ANY($11::uuid[])))
          AND (coalesce(c.name,'') || ' ' || coalesce(c.last_name,'') || ' ' || coalesce(c.short_name,'') || ' ' || coalesce(c.custom_name,'') || ' ' || coalesce(c.push_name,'') || ' ' || coalesce(c.phone,'') || ' ' || c.jid || ' ' || coalesce(c.email,'') || ' ' || coalesce(c.company,'')) ILIKE $13::text
        LIMIT $12::int + 1
    ) capped
    WHERE $12::int > 0
), page AS (
    SELECT c AS contact, c.id,
           (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL) AS k_null,
           COALESCE(c.custom_name, c.name, c.push_name, c.phone, '') AS k_text,
           row_number() OVER (ORDER BY (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
                                       COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id) AS rn
    FROM contacts c
    WHERE c.account_id = $1 AND c.is_group = $2
      AND ((COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
           COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id) > ($5::bool, $6::text, $7::uuid)
      AND ($8::uuid IS NULL OR c.device_id = $8::uuid)
      AND (NOT $9::bool OR (c.phone IS NOT NULL AND c.phone <> ''))
      AND ($10::text[] IS NULL OR c.tags && $10::text[])
      AND ($11::uuid[] IS NULL OR c.id IN (SELECT ct.contact_id FROM contact_tags ct WHERE ct.tag_id = ANY($11::uuid[])))
      AND (coalesce(c.name,'') || ' ' || coalesce(c.last_name,'') || ' ' || coalesce(c.short_name,'') || ' ' || coalesce(c.custom_name,'') || ' ' || coalesce(c.push_name,'') || ' ' || coalesce(c.phone,'') || ' ' || c.jid || ' ' || coalesce(c.email,'') || ' ' || coalesce(c.company,'')) ILIKE $13::text
    ORDER BY (COALESCE(c.custom_name, c.name, c.push_name, c.phone) IS NULL),
             COALESCE(c.custom_name, c.name, c.push_name, c.phone, ''), c.id
    LIMIT $3::int + 1 OFFSET $4::int
)
SELECT (SELECT t.total FROM t) AS total,
       '[' || coalesce(string_agg(wire_contact(p.contact, tg.list), ',' ORDER BY p.rn)
                           FILTER (WHERE p.rn <= $3::int + $4::int), '') || ']' AS body,
       count(p.id) > $3::int AS more,
       bool_or(p.k_null) FILTER (WHERE p.rn = $3::int + $4::int) AS last_null,
       min(p.k_text) FILTER (WHERE p.rn = $3::int + $4::int) AS last_text,
       (array_agg(p.id) FILTER (WHERE p.rn = $3::int + $4::int))[1] AS last_id
FROM page p
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_tag(tag), ',' ORDER BY tag.name, tag.id) || ']' AS list
    FROM contact_tags ct
    JOIN tags tag ON tag.id = ct.tag_id
    WHERE ct.contact_id = p.id AND tag.account_id = $1 AND p.rn <= $3::int + $4::int
) tg ON true

-- name: contacts_tags_for_contacts
-- structured_tags of a whole page in one query ($2 = contact ids); grouped by contact_id in Python.
SELECT ct.contact_id, t.id, t.account_id, t.name, t.color, t.created_at, t.updated_at
FROM contact_tags ct
JOIN tags t ON t.id = ct.tag_id
WHERE ct.contact_id = ANY($2::uuid[]) AND t.account_id = $1
ORDER BY t.name, t.id

-- name: contacts_duplicates
-- R76: non-group contacts sharing a non-empty phone; at most $2 groups (by phone), members newest first.
SELECT c.id, c.account_id, c.device_id, c.jid, c.phone, c.name, c.last_name, c.short_name, c.custom_name,
       c.push_name, c.avatar_url, c.email, c.company, c.age, NULLIF(array_remove(c.tags, NULL), '{}') AS tags,
       c.notes, c.source, c.is_group, c.created_at, c.updated_at
FROM contacts c
WHERE c.account_id = $1 AND NOT c.is_group AND c.phone IS NOT NULL AND c.phone <> ''
  AND c.phone IN (
      SELECT d.phone
      FROM contacts d
      WHERE d.account_id = $1 AND NOT d.is_group AND d.phone IS NOT NULL AND d.phone <> ''
      GROUP BY d.phone
      HAVING count(*) > 1
      ORDER BY d.phone
      LIMIT $2
  )
ORDER BY c.phone, c.updated_at DESC, c.id

-- name: contacts_get
SELECT c.id, c.account_id, c.device_id, c.jid, c.phone, c.name, c.last_name, c.short_name, c.custom_name,
       c.push_name, c.avatar_url, c.email, c.company, c.age, NULLIF(array_remove(c.tags, NULL), '{}') AS tags,
       c.notes, c.source, c.is_group, c.created_at, c.updated_at
FROM contacts c
WHERE c.id = $2 AND c.account_id = $1

-- name: contacts_lock
SELECT c.id FROM contacts c WHERE c.id = $2 AND c.account_id = $1 FOR UPDATE

-- name: contacts_device_names
-- R79: the per-device names of one contact, newest first, with the device's own name.
SELECT n.id, n.contact_id, n.device_id, n.name, n.push_name, n.business_name, n.synced_at, d.name AS device_name
FROM contact_device_names n
JOIN contacts c ON c.id = n.contact_id
LEFT JOIN devices d ON d.id = n.device_id
WHERE n.contact_id = $2 AND c.account_id = $1
ORDER BY n.synced_at DESC, n.id

-- name: contacts_update
-- R80 partial update: a NULL parameter keeps the column; '' clears it (stored as NULL); $11 replaces tags.
UPDATE contacts c
SET custom_name = CASE WHEN $3::text IS NULL THEN c.custom_name ELSE NULLIF($3::text, '') END,
    last_name   = CASE WHEN $4::text IS NULL THEN c.last_name ELSE NULLIF($4::text, '') END,
    short_name  = CASE WHEN $5::text IS NULL THEN c.short_name ELSE NULLIF($5::text, '') END,
    phone       = CASE WHEN $6::text IS NULL THEN c.phone ELSE NULLIF($6::text, '') END,
    email       = CASE WHEN $7::text IS NULL THEN c.email ELSE NULLIF($7::text, '') END,
    company     = CASE WHEN $8::text IS NULL THEN c.company ELSE NULLIF($8::text, '') END,
    notes       = CASE WHEN $9::text IS NULL THEN c.notes ELSE NULLIF($9::text, '') END,
    age         = COALESCE($10::int, c.age),
    tags        = CASE WHEN $11::text[] IS NULL THEN c.tags ELSE $11::text[] END,
    updated_at  = now()
WHERE c.id = $2 AND c.account_id = $1
RETURNING c.id, c.account_id, c.device_id, c.jid, c.phone, c.name, c.last_name, c.short_name, c.custom_name,
          c.push_name, c.avatar_url, c.email, c.company, c.age, NULLIF(array_remove(c.tags, NULL), '{}') AS tags,
          c.notes, c.source, c.is_group, c.created_at, c.updated_at

-- name: contacts_sync_participants
-- §5.5 contact → participants linked to it (the account's events only): name only when the contact has one;
-- last_name, short_name, phone, email and age are overwritten, NULL included, as the original.
UPDATE event_participants p
SET name = COALESCE(NULLIF(c.name, ''), p.name),
    last_name = c.last_name,
    short_name = c.short_name,
    phone = c.phone,
    email = c.email,
    age = c.age,
    updated_at = now()
FROM contacts c, events e
WHERE c.id = $2 AND c.account_id = $1 AND p.contact_id = c.id AND e.id = p.event_id AND e.account_id = $1
RETURNING p.id, p.event_id

-- name: contacts_sync_lead
-- §5.5 contact → the lead with the same JID: name = the contact's display name, the other shared fields only
-- where the contact has a value.
UPDATE leads l
SET name = COALESCE(NULLIF(c.custom_name, ''), NULLIF(c.name, ''), NULLIF(c.push_name, ''), NULLIF(c.phone, ''), c.jid),
    last_name = COALESCE(c.last_name, l.last_name),
    short_name = COALESCE(c.short_name, l.short_name),
    phone = COALESCE(c.phone, l.phone),
    email = COALESCE(c.email, l.email),
    company = COALESCE(c.company, l.company),
    age = COALESCE(c.age, l.age),
    notes = COALESCE(c.notes, l.notes),
    updated_at = now()
FROM contacts c
WHERE c.id = $2 AND c.account_id = $1 AND l.account_id = $1 AND l.jid = c.jid
RETURNING l.id

-- name: contacts_reset_from_device
-- R81: clear custom_name and take name/push_name from the most recent per-device record (where non-null).
-- No row when the contact has no device names.
UPDATE contacts c
SET custom_name = NULL,
    name = COALESCE(n.name, c.name),
    push_name = COALESCE(n.push_name, c.push_name),
    updated_at = now()
FROM (
    SELECT dn.name, dn.push_name
    FROM contact_device_names dn
    WHERE dn.contact_id = $2
    ORDER BY dn.synced_at DESC, dn.id DESC
    LIMIT 1
) n
WHERE c.id = $2 AND c.account_id = $1
RETURNING c.id, c.account_id, c.device_id, c.jid, c.phone, c.name, c.last_name, c.short_name, c.custom_name,
          c.push_name, c.avatar_url, c.email, c.company, c.age, NULLIF(array_remove(c.tags, NULL), '{}') AS tags,
          c.notes, c.source, c.is_group, c.created_at, c.updated_at

-- name: contacts_delete
-- R78/R82: deletes the caller's rows among $2 and reports the leads that were linked to them (their
-- contact_id becomes NULL through the FK), so the service can invalidate and announce them.
WITH linked AS (
    SELECT l.id FROM leads l WHERE l.account_id = $1 AND l.contact_id = ANY($2::uuid[])
), gone AS (
    DELETE FROM contacts c WHERE c.account_id = $1 AND c.id = ANY($2::uuid[]) RETURNING c.id
)
SELECT ARRAY(SELECT gone.id FROM gone) AS ids, ARRAY(SELECT linked.id FROM linked) AS lead_ids

-- =====================================================================================================================
-- Merge (R77): one transaction, statements run in this order by clarin/crm/contact_merge.py.
-- $1 is always the account. "sources" = the merged contacts' JIDs / ids.
-- =====================================================================================================================

-- name: contacts_merge_lock
-- All contacts of the merge, locked; fewer rows than ids means a foreign or unknown id (→ 404).
SELECT c.id, c.jid FROM contacts c WHERE c.account_id = $1 AND c.id = ANY($2::uuid[]) ORDER BY c.id FOR UPDATE

-- name: contacts_merge_claim_chat
-- When the kept JID ($3) has no chat yet, the most recent chat of the merged JIDs ($2) becomes it.
UPDATE chats
SET jid = $3, contact_id = $4, updated_at = now()
WHERE id = (
    SELECT s.id FROM chats s
    WHERE s.account_id = $1 AND s.jid = ANY($2::text[])
    ORDER BY s.last_message_at DESC NULLS LAST, s.id
    LIMIT 1
)
  AND NOT EXISTS (SELECT 1 FROM chats k WHERE k.account_id = $1 AND k.jid = $3)
RETURNING id

-- name: contacts_merge_chat_of_jid
SELECT ch.id FROM chats ch WHERE ch.account_id = $1 AND ch.jid = $2 FOR UPDATE

-- name: contacts_merge_move_messages
-- Messages of the merged chats ($3 JIDs) move into the kept chat ($2). The dedup key (account_id, chat_id,
-- message_id) is respected: a stanza the kept chat already has (or a second copy among the sources) stays
-- behind and is deleted with its emptied chat. Moving (not copying) keeps ids, so polls and votes follow.
UPDATE messages m
SET chat_id = $2
WHERE m.id IN (
    SELECT DISTINCT ON (s.message_id) s.id
    FROM messages s
    JOIN chats ch ON ch.id = s.chat_id
    WHERE ch.account_id = $1 AND ch.jid = ANY($3::text[]) AND ch.id <> $2 AND s.account_id = $1
      AND NOT EXISTS (
          SELECT 1 FROM messages k WHERE k.account_id = $1 AND k.chat_id = $2 AND k.message_id = s.message_id
      )
    ORDER BY s.message_id, s."timestamp", s.id
)

-- name: contacts_merge_move_reactions
UPDATE message_reactions r
SET chat_id = $2, updated_at = now()
WHERE r.id IN (
    SELECT DISTINCT ON (s.target_message_id, s.sender_jid) s.id
    FROM message_reactions s
    JOIN chats ch ON ch.id = s.chat_id
    WHERE ch.account_id = $1 AND ch.jid = ANY($3::text[]) AND ch.id <> $2 AND s.account_id = $1
      AND NOT EXISTS (
          SELECT 1 FROM message_reactions k
          WHERE k.chat_id = $2 AND k.target_message_id = s.target_message_id AND k.sender_jid = s.sender_jid
      )
    ORDER BY s.target_message_id, s.sender_jid, s."timestamp" DESC, s.id
)

-- name: contacts_merge_move_chat_tags
INSERT INTO chat_tags (chat_id, tag_id)
SELECT DISTINCT $2::uuid, ct.tag_id
FROM chat_tags ct
JOIN chats ch ON ch.id = ct.chat_id
WHERE ch.account_id = $1 AND ch.jid = ANY($3::text[]) AND ch.id <> $2
ON CONFLICT DO NOTHING

-- name: contacts_merge_fold_chat
-- The kept chat takes the unread count, pin and latest preview of the merged chats.
UPDATE chats k
SET unread_count = k.unread_count + s.unread,
    is_pinned = k.is_pinned OR s.pinned,
    last_message = CASE WHEN s.last_at IS NOT NULL AND (k.last_message_at IS NULL OR s.last_at > k.last_message_at)
                        THEN s.last_message ELSE k.last_message END,
    last_message_at = GREATEST(k.last_message_at, s.last_at),
    contact_id = $4,
    updated_at = now()
FROM (
    SELECT COALESCE(sum(ch.unread_count), 0)::int AS unread,
           COALESCE(bool_or(ch.is_pinned), false) AS pinned,
           max(ch.last_message_at) AS last_at,
           (array_agg(ch.last_message ORDER BY ch.last_message_at DESC NULLS LAST))[1] AS last_message
    FROM chats ch
    WHERE ch.account_id = $1 AND ch.jid = ANY($3::text[]) AND ch.id <> $2
) s
WHERE k.id = $2 AND k.account_id = $1

-- name: contacts_merge_delete_chats
-- The emptied chats of the merged JIDs (leftover duplicate messages cascade with them).
DELETE FROM chats ch WHERE ch.account_id = $1 AND ch.jid = ANY($2::text[]) AND ch.id <> $3

-- name: contacts_merge_claim_lead
-- When the kept JID ($3) has no lead yet, the most recently updated lead of the merged JIDs becomes it.
UPDATE leads
SET jid = $3, contact_id = $4, updated_at = now()
WHERE id = (
    SELECT s.id FROM leads s
    WHERE s.account_id = $1 AND s.jid = ANY($2::text[])
    ORDER BY s.updated_at DESC, s.id
    LIMIT 1
)
  AND NOT EXISTS (SELECT 1 FROM leads k WHERE k.account_id = $1 AND k.jid = $3)
RETURNING id

-- name: contacts_merge_lead_of_jid
SELECT l.id FROM leads l WHERE l.account_id = $1 AND l.jid = $2 FOR UPDATE

-- name: contacts_merge_duplicate_leads
SELECT l.id FROM leads l WHERE l.account_id = $1 AND l.jid = ANY($2::text[]) AND l.id <> $3 FOR UPDATE

-- name: contacts_merge_move_lead_interactions
UPDATE interactions SET lead_id = $2 WHERE account_id = $1 AND lead_id = ANY($3::uuid[])

-- name: contacts_merge_move_lead_tags
INSERT INTO lead_tags (lead_id, tag_id)
SELECT DISTINCT $2::uuid, lt.tag_id
FROM lead_tags lt
JOIN leads l ON l.id = lt.lead_id
WHERE l.account_id = $1 AND lt.lead_id = ANY($3::uuid[])
ON CONFLICT DO NOTHING

-- name: contacts_merge_delete_leads
DELETE FROM leads WHERE account_id = $1 AND id = ANY($2::uuid[])

-- name: contacts_merge_relink_leads
-- The kept lead and any other lead that pointed at a merged contact now point at the kept contact.
UPDATE leads
SET contact_id = $2, updated_at = now()
WHERE account_id = $1 AND (id = $4::uuid OR contact_id = ANY($3::uuid[]))
RETURNING id

-- name: contacts_merge_move_contact_tags
INSERT INTO contact_tags (contact_id, tag_id)
SELECT DISTINCT $2::uuid, ct.tag_id
FROM contact_tags ct
JOIN contacts c ON c.id = ct.contact_id
WHERE c.account_id = $1 AND ct.contact_id = ANY($3::uuid[])
ON CONFLICT DO NOTHING

-- name: contacts_merge_move_device_names
-- Per-device names move to the kept contact; a device it already has a name for keeps the kept one, and
-- among the merged contacts the most recent record per device wins.
INSERT INTO contact_device_names (contact_id, device_id, name, push_name, business_name, synced_at)
SELECT DISTINCT ON (n.device_id) $2::uuid, n.device_id, n.name, n.push_name, n.business_name, n.synced_at
FROM contact_device_names n
JOIN contacts c ON c.id = n.contact_id
WHERE c.account_id = $1 AND n.contact_id = ANY($3::uuid[])
ORDER BY n.device_id, n.synced_at DESC, n.id
ON CONFLICT (contact_id, device_id) DO NOTHING

-- name: contacts_merge_move_interactions
UPDATE interactions SET contact_id = $2 WHERE account_id = $1 AND contact_id = ANY($3::uuid[])

-- name: contacts_merge_move_participants
-- One participant per event may point at the kept contact (idx_event_participants_unique_contact): where the
-- kept contact is already registered, or for a second merged participant of the same event, the link is
-- dropped (SET NULL) when the merged contact is deleted.
UPDATE event_participants p
SET contact_id = $2, updated_at = now()
WHERE p.id IN (
    SELECT DISTINCT ON (s.event_id) s.id
    FROM event_participants s
    JOIN events e ON e.id = s.event_id
    WHERE e.account_id = $1 AND s.contact_id = ANY($3::uuid[])
      AND NOT EXISTS (SELECT 1 FROM event_participants k WHERE k.event_id = s.event_id AND k.contact_id = $2)
    ORDER BY s.event_id, s.created_at, s.id
)

-- name: contacts_merge_move_recipients
UPDATE campaign_recipients r
SET contact_id = $2, updated_at = now()
FROM campaigns cp
WHERE cp.id = r.campaign_id AND cp.account_id = $1 AND r.contact_id = ANY($3::uuid[])

-- name: contacts_merge_delete_contacts
DELETE FROM contacts WHERE account_id = $1 AND id = ANY($2::uuid[])
