-- Leads (spec api.md §4.7 R37–R44, schema.md §3.11, §5.1, §5.4, §5.5).
-- Every statement is scoped by account_id. Lists use idx_leads_account_created_incl
-- (account_id, created_at DESC, id DESC, 0011; idx_leads_account_created without contrib); search repeats the trigram expression of
-- 0011_leads_search_per_account.sql verbatim (with the l. alias) so idx_leads_account_search_trgm serves it.

-- name: leads_list_all
-- R37 compatibility mode (no paging parameters): the whole board, newest first, capped by $2, as the JSON
-- array of the dashboard's Lead objects (wire_lead, 0008_wire_json.sql): one text value passed through.
WITH page AS (
    SELECT l AS lead, l.id, l.stage_id, l.created_at
    FROM leads l
    WHERE l.account_id = $1
    ORDER BY l.created_at DESC, l.id DESC
    LIMIT $2
), tg AS (
    SELECT lt.lead_id, '[' || string_agg(wire_tag(t), ',' ORDER BY t.name, t.id) || ']' AS structured_tags
    FROM lead_tags lt
    JOIN tags t ON t.id = lt.tag_id
    WHERE lt.lead_id IN (SELECT p.id FROM page p) AND t.account_id = $1
    GROUP BY lt.lead_id
)
SELECT '[' || coalesce(string_agg(wire_lead(p.lead, ps, tg.structured_tags), ','
                                  ORDER BY p.created_at DESC, p.id DESC), '') || ']' AS body
FROM page p
LEFT JOIN pipeline_stages ps ON ps.id = p.stage_id
LEFT JOIN tg ON tg.lead_id = p.id

-- R37 paged mode: ONE statement per filter shape, chosen in clarin/crm/lead_reads.py, so that no statement
-- carries a catch-all "($n IS NULL OR ...)" on its driving filter and every generic plan is the custom plan
-- (bench/explain.py checks it). All pages are keyset pages on (created_at, id): $2/$3 are the cursor (the
-- last row of the previous page; without a cursor the service passes a sentinel after every row, so the
-- condition is an index bound of idx_leads_account_created_incl / idx_leads_account_stage_created / ...,
-- never a filter). OFFSET applies after the cursor. Rows are hydrated in Python (building this page's JSON
-- in PostgreSQL cost its CPU more than it saved, bench/RESULTS.md). The service asks LIMIT n+1 to know
-- whether a next page exists.

-- name: leads_page
-- No filter: idx_leads_account_created_incl from the cursor on, O(page) at any depth.
-- $1 account, $2/$3 cursor (created_at, id), $4 limit, $5 offset. A plain join of the stages: measured side by
-- side on the peers' data, 10k and 1M leads, it touches 90-96 blocks in its custom and generic plans alike and
-- runs in 0.56 ms, where the page-then-distinct-stages CTE shape touched 107-113 and took 0.82 ms (the raw path
-- of issue 13 pays every statement's CPU).
SELECT l.id, l.account_id, l.contact_id, l.jid, l.name, l.last_name, l.short_name, l.phone, l.email,
       l.company, l.age, l.status, l.pipeline_id, l.stage_id, l.source, l.notes, l.tags, l.custom_fields,
       l.assigned_to, l.created_at, l.updated_at,
       ps.name AS stage_name, ps.color AS stage_color, ps.position AS stage_position
FROM leads l
LEFT JOIN pipeline_stages ps ON ps.id = l.stage_id
WHERE l.account_id = $1 AND (l.created_at, l.id) < ($2::timestamptz, $3::uuid)
ORDER BY l.created_at DESC, l.id DESC
LIMIT $4 OFFSET $5

-- name: leads_page_pipeline
-- ?pipeline_id (without stage, tags or search): idx_leads_account_pipeline_created. $6 pipeline.
WITH page AS MATERIALIZED (
    SELECT l.id, l.account_id, l.contact_id, l.jid, l.name, l.last_name, l.short_name, l.phone, l.email,
           l.company, l.age, l.status, l.pipeline_id, l.stage_id, l.source, l.notes, l.tags, l.custom_fields,
           l.assigned_to, l.created_at, l.updated_at
    FROM leads l
    WHERE l.account_id = $1 AND l.pipeline_id = $6::uuid AND (l.created_at, l.id) < ($2::timestamptz, $3::uuid)
    ORDER BY l.created_at DESC, l.id DESC
    LIMIT $4 OFFSET $5
), st AS MATERIALIZED (
    -- the page's few distinct stages, each by primary key (a plain join probed pipeline_stages once per row in
    -- the generic plan: 150 of a page's 200 blocks; OFFSET 0 keeps the probe from becoming a scan of every stage)
    SELECT ps.id, ps.name, ps.color, ps.position
    FROM (SELECT DISTINCT p.stage_id FROM page p WHERE p.stage_id IS NOT NULL) d
    CROSS JOIN LATERAL (SELECT x.id, x.name, x.color, x.position FROM pipeline_stages x
                        WHERE x.id = d.stage_id OFFSET 0) ps
)
SELECT p.id, p.account_id, p.contact_id, p.jid, p.name, p.last_name, p.short_name, p.phone, p.email,
       p.company, p.age, p.status, p.pipeline_id, p.stage_id, p.source, p.notes, p.tags, p.custom_fields,
       p.assigned_to, p.created_at, p.updated_at,
       st.name AS stage_name, st.color AS stage_color, st.position AS stage_position
FROM page p
LEFT JOIN st ON st.id = p.stage_id
ORDER BY p.created_at DESC, p.id DESC

-- name: leads_page_stage
-- ?stage_id (without tags or search): idx_leads_account_stage_created; $7 pipeline is an optional
-- residual filter (a stage belongs to one pipeline, so it only ever removes rows of a moved lead).
WITH page AS MATERIALIZED (
    SELECT l.id, l.account_id, l.contact_id, l.jid, l.name, l.last_name, l.short_name, l.phone, l.email,
           l.company, l.age, l.status, l.pipeline_id, l.stage_id, l.source, l.notes, l.tags, l.custom_fields,
           l.assigned_to, l.created_at, l.updated_at
    FROM leads l
    WHERE l.account_id = $1 AND l.stage_id = $6::uuid AND (l.created_at, l.id) < ($2::timestamptz, $3::uuid)
      AND ($7::uuid IS NULL OR l.pipeline_id = $7::uuid)
    ORDER BY l.created_at DESC, l.id DESC
    LIMIT $4 OFFSET $5
), st AS MATERIALIZED (
    -- the page's few distinct stages, each by primary key (a plain join probed pipeline_stages once per row in
    -- the generic plan: 150 of a page's 200 blocks; OFFSET 0 keeps the probe from becoming a scan of every stage)
    SELECT ps.id, ps.name, ps.color, ps.position
    FROM (SELECT DISTINCT p.stage_id FROM page p WHERE p.stage_id IS NOT NULL) d
    CROSS JOIN LATERAL (SELECT x.id, x.name, x.color, x.position FROM pipeline_stages x
                        WHERE x.id = d.stage_id OFFSET 0) ps
)
SELECT p.id, p.account_id, p.contact_id, p.jid, p.name, p.last_name, p.short_name, p.phone, p.email,
       p.company, p.age, p.status, p.pipeline_id, p.stage_id, p.source, p.notes, p.tags, p.custom_fields,
       p.assigned_to, p.created_at, p.updated_at,
       st.name AS stage_name, st.color AS stage_color, st.position AS stage_position
FROM page p
LEFT JOIN st ON st.id = p.stage_id
ORDER BY p.created_at DESC, p.id DESC

-- name: leads_page_tag
-- ?tag_ids (any of; without search), one tag or several: each tag of the account ($6, checked against tags.account_id,
-- so a foreign tag is not walked at all) is walked in board order from the cursor on idx_lead_tags_tag_created
-- (tag_id, lead_created_at DESC, lead_id DESC; lead_tags carries its lead's created_at, 0013), each entry's lead read
-- by primary key (account and the optional residual filters $7 pipeline / $8 stage), at most $4 + $5 per tag; the
-- tags' lists are merged newest first, a lead with several of the tags kept once (DISTINCT ON), and the page cut.
-- O(tags x (page + offset)) whatever the tags' sizes (it hashed every lead id of the tags: ~4,900 blocks for a
-- 15k-lead tag at 1M leads). Correct because a tag's leads ahead of a lead in its list are distinct leads ahead of it
-- in the merged order: each of the first $4 + $5 merged leads is among its tag's first $4 + $5.
-- OFFSET 0 keeps the lead lookup a parameterised probe by primary key (never a join of the whole account).
WITH page AS MATERIALIZED (
    SELECT DISTINCT ON (h.created_at, h.id)
           h.id, h.account_id, h.contact_id, h.jid, h.name, h.last_name, h.short_name, h.phone, h.email,
           h.company, h.age, h.status, h.pipeline_id, h.stage_id, h.source, h.notes, h.tags, h.custom_fields,
           h.assigned_to, h.created_at, h.updated_at
    FROM tags t
    CROSS JOIN LATERAL (
        SELECT l.id, l.account_id, l.contact_id, l.jid, l.name, l.last_name, l.short_name, l.phone, l.email,
               l.company, l.age, l.status, l.pipeline_id, l.stage_id, l.source, l.notes, l.tags, l.custom_fields,
               l.assigned_to, l.created_at, l.updated_at
        FROM lead_tags lt
        CROSS JOIN LATERAL (
            SELECT x.id, x.account_id, x.contact_id, x.jid, x.name, x.last_name, x.short_name, x.phone, x.email,
                   x.company, x.age, x.status, x.pipeline_id, x.stage_id, x.source, x.notes, x.tags, x.custom_fields,
                   x.assigned_to, x.created_at, x.updated_at
            FROM leads x
            WHERE x.id = lt.lead_id AND x.account_id = $1
              AND ($7::uuid IS NULL OR x.pipeline_id = $7::uuid)
              AND ($8::uuid IS NULL OR x.stage_id = $8::uuid)
            OFFSET 0) l
        WHERE lt.tag_id = t.id AND (lt.lead_created_at, lt.lead_id) < ($2::timestamptz, $3::uuid)
        ORDER BY lt.lead_created_at DESC, lt.lead_id DESC
        LIMIT $4::bigint + $5::bigint
    ) h
    WHERE t.id = ANY($6::uuid[]) AND t.account_id = $1
    ORDER BY h.created_at DESC, h.id DESC
    LIMIT $4 OFFSET $5
), st AS MATERIALIZED (
    -- the page's few distinct stages, each by primary key (OFFSET 0: a probe, never a scan of every stage)
    SELECT ps.id, ps.name, ps.color, ps.position
    FROM (SELECT DISTINCT p.stage_id FROM page p WHERE p.stage_id IS NOT NULL) d
    CROSS JOIN LATERAL (SELECT x.id, x.name, x.color, x.position FROM pipeline_stages x
                        WHERE x.id = d.stage_id OFFSET 0) ps
)
SELECT p.id, p.account_id, p.contact_id, p.jid, p.name, p.last_name, p.short_name, p.phone, p.email,
       p.company, p.age, p.status, p.pipeline_id, p.stage_id, p.source, p.notes, p.tags, p.custom_fields,
       p.assigned_to, p.created_at, p.updated_at,
       st.name AS stage_name, st.color AS stage_color, st.position AS stage_position
FROM page p
LEFT JOIN st ON st.id = p.stage_id
ORDER BY p.created_at DESC, p.id DESC

-- name: leads_page_search_few
-- ?search when the capped count found at most LEADS_TOTAL_CAP matches: all of them come from the account's
-- trigram index (idx_leads_account_search_trgm, 0011: account_id and the expression in one GIN index), at
-- most $9 rows, and are sorted here. The expression must stay identical to the index's. (Reading columns that
-- idx_leads_account_created_incl lacks keeps the generic plan from walking that index instead, testing every
-- lead of the account: 230 blocks against 15 at 10k leads, 16k at 1M.) $6 ILIKE pattern,
-- $7 pipeline, $8 stage, $10 tag ids: optional residual filters.
WITH hits AS MATERIALIZED (
    -- the whole rows (read from the heap anyway): the page needs no second lookup; reading columns that
    -- idx_leads_account_created_incl lacks also keeps the plan on the trigram index
    SELECT l.id, l.account_id, l.contact_id, l.jid, l.name, l.last_name, l.short_name, l.phone, l.email,
           l.company, l.age, l.status, l.pipeline_id, l.stage_id, l.source, l.notes, l.tags, l.custom_fields,
           l.assigned_to, l.created_at, l.updated_at
    FROM leads l
    WHERE l.account_id = $1
      AND (coalesce(l.name,'') || ' ' || coalesce(l.last_name,'') || ' ' || coalesce(l.phone,'') || ' ' || coalesce(l.email,'') || ' ' || coalesce(l.company,'') || ' ' || l.jid) ILIKE $6
      AND (l.created_at, l.id) < ($2::timestamptz, $3::uuid)
      AND ($7::uuid IS NULL OR l.pipeline_id = $7::uuid)
      AND ($8::uuid IS NULL OR l.stage_id = $8::uuid)
      AND ($10::uuid[] IS NULL OR l.id IN (SELECT lt.lead_id FROM lead_tags lt WHERE lt.tag_id = ANY($10::uuid[])))
    LIMIT (SELECT $9::bigint)  -- unseen by the planner, as in leads_count_search
)
SELECT l.id, l.account_id, l.contact_id, l.jid, l.name, l.last_name, l.short_name, l.phone, l.email,
       l.company, l.age, l.status, l.pipeline_id, l.stage_id, l.source, l.notes, l.tags, l.custom_fields,
       l.assigned_to, l.created_at, l.updated_at,
       ps.name AS stage_name, ps.color AS stage_color, ps.position AS stage_position
FROM hits l
LEFT JOIN pipeline_stages ps ON ps.id = l.stage_id
ORDER BY l.created_at DESC, l.id DESC
LIMIT $4 OFFSET $5

-- name: leads_page_search_many
-- ?search when the capped count found more than LEADS_TOTAL_CAP matches: the newest leads of the account are
-- walked from the cursor (idx_leads_account_created_incl, index only: it includes the searched columns) and
-- tested until the page is full, about
-- page / (share of matching leads) rows, where sorting every match would cost O(matches). The inner
-- LIMIT (SELECT ...) is a fence: it keeps the ILIKE out of the scan (so the planner cannot swap the walk for
-- a trigram bitmap plus a sort of every match) and, unknown at plan time, keeps the walk in custom plans too.
-- Parameters as leads_page_search_few without the $9 cap: $9 tag ids.
WITH page AS (
    SELECT w.id, w.created_at
    FROM (SELECT l.id, l.created_at, l.name, l.last_name, l.phone, l.email, l.company, l.jid, l.pipeline_id,
                 l.stage_id
          FROM leads l
          WHERE l.account_id = $1 AND (l.created_at, l.id) < ($2::timestamptz, $3::uuid)
          ORDER BY l.created_at DESC, l.id DESC
          LIMIT (SELECT 1000000000)) w
    WHERE (coalesce(w.name,'') || ' ' || coalesce(w.last_name,'') || ' ' || coalesce(w.phone,'') || ' ' || coalesce(w.email,'') || ' ' || coalesce(w.company,'') || ' ' || w.jid) ILIKE $6
      AND ($7::uuid IS NULL OR w.pipeline_id = $7::uuid)
      AND ($8::uuid IS NULL OR w.stage_id = $8::uuid)
      AND ($9::uuid[] IS NULL OR w.id IN (SELECT lt.lead_id FROM lead_tags lt WHERE lt.tag_id = ANY($9::uuid[])))
    ORDER BY w.created_at DESC, w.id DESC
    LIMIT $4 OFFSET $5
)
SELECT l.id, l.account_id, l.contact_id, l.jid, l.name, l.last_name, l.short_name, l.phone, l.email,
       l.company, l.age, l.status, l.pipeline_id, l.stage_id, l.source, l.notes, l.tags, l.custom_fields,
       l.assigned_to, l.created_at, l.updated_at,
       ps.name AS stage_name, ps.color AS stage_color, ps.position AS stage_position
FROM page p
JOIN leads l ON l.id = p.id
LEFT JOIN pipeline_stages ps ON ps.id = l.stage_id
ORDER BY p.created_at DESC, p.id DESC

-- Filtered totals: exact up to a cap, never a count of the whole account. Each counts at most $2 rows
-- (the service passes LEADS_TOTAL_CAP + 1; more than the cap answers total = cap, "total_capped": true).

-- name: leads_count_pipeline
SELECT count(*) AS total
FROM (SELECT 1 FROM leads l WHERE l.account_id = $1 AND l.pipeline_id = $3::uuid LIMIT $2) x

-- name: leads_count_stage
-- Index only (idx_leads_account_stage_created). No pipeline filter here: a residual "$n IS NULL OR" on a column
-- the index lacks made the generic plan visit the heap (307 blocks against 7 at 100k leads).
SELECT count(*) AS total
FROM (SELECT 1 FROM leads l WHERE l.account_id = $1 AND l.stage_id = $3::uuid LIMIT $2) x

-- name: leads_count_stage_pipeline
-- Both: index only on idx_leads_account_stage_created, which includes pipeline_id. "IS TRUE" keeps the generic
-- plan off a BitmapAnd with the pipeline's index (729 blocks against 49 at 100k leads).
SELECT count(*) AS total
FROM (SELECT 1 FROM leads l
      WHERE l.account_id = $1 AND l.stage_id = $3::uuid AND (l.pipeline_id = $4::uuid) IS TRUE
      LIMIT $2) x

-- name: leads_count_tag
-- Several tags: each tag of the account ($3, checked against tags.account_id) walked on idx_lead_tags_tag_created
-- until $2 of its leads are found in the account (each looked up by primary key; OFFSET 0 keeps it a parameterised
-- probe), the tags' finds de-duplicated and counted up to $2. Exact below the cap: when every tag has fewer than
-- $2 matches its list is complete; when one has $2, so has the union. O(tags x cap), where the DISTINCT over every
-- lead id of the tags was O(tags' sizes). $4 pipeline, $5 stage: optional residual filters.
SELECT count(*) AS total
FROM (SELECT DISTINCT h.id
      FROM tags t
      CROSS JOIN LATERAL (
          SELECT lt.lead_id AS id
          FROM lead_tags lt
          CROSS JOIN LATERAL (
              SELECT 1 FROM leads l
              WHERE l.id = lt.lead_id AND l.account_id = $1
                AND ($4::uuid IS NULL OR l.pipeline_id = $4::uuid)
                AND ($5::uuid IS NULL OR l.stage_id = $5::uuid)
              OFFSET 0) hit
          WHERE lt.tag_id = t.id
          LIMIT $2) h
      WHERE t.id = ANY($3::uuid[]) AND t.account_id = $1
      LIMIT $2) x

-- name: leads_count_tag1
-- leads_count_tag for ONE tag: its lead ids come from idx_lead_tags_tag_created and are unique (the primary key
-- is (lead_id, tag_id)), so nothing is de-duplicated and the scan stops at $2 leads: O(cap) whatever the tag's
-- size (a DISTINCT over the tag's lead ids hashed them all first: 5,657 blocks for a 15k-lead tag at 1M).
SELECT count(*) AS total
FROM (SELECT 1
      FROM lead_tags lt
      CROSS JOIN LATERAL (
          SELECT 1 FROM leads l
          WHERE l.id = lt.lead_id AND l.account_id = $1
            AND ($4::uuid IS NULL OR l.pipeline_id = $4::uuid)
            AND ($5::uuid IS NULL OR l.stage_id = $5::uuid)
          OFFSET 0) hit
      WHERE lt.tag_id = $3::uuid
        AND EXISTS (SELECT 1 FROM tags t WHERE t.id = $3::uuid AND t.account_id = $1)  -- a foreign tag: no walk
      LIMIT $2) x

-- name: leads_count_search
-- The account's trigram index (0011), at most $2 matches read. $3 pattern; $4 pipeline, $5 stage, $6 tags.
-- LIMIT (SELECT $2): a limit the planner cannot see. With a visible one, a custom plan for a term that is
-- common in the whole table read the table sequentially until $2 matches of this account turned up: cheap
-- when the account has them, a scan of every account's leads when it does not (estimates are per table).
SELECT count(*) AS total
FROM (SELECT 1 FROM leads l
      WHERE l.account_id = $1
        AND (coalesce(l.name,'') || ' ' || coalesce(l.last_name,'') || ' ' || coalesce(l.phone,'') || ' ' || coalesce(l.email,'') || ' ' || coalesce(l.company,'') || ' ' || l.jid) ILIKE $3
        AND ($4::uuid IS NULL OR l.pipeline_id = $4::uuid)
        AND ($5::uuid IS NULL OR l.stage_id = $5::uuid)
        AND ($6::uuid[] IS NULL OR l.id IN (SELECT lt.lead_id FROM lead_tags lt WHERE lt.tag_id = ANY($6::uuid[])))
      LIMIT (SELECT $2::bigint)) x

-- name: leads_count_all
-- The unfiltered total: the account's counter slots (0009_account_counters.sql), exact and O(1).
SELECT coalesce(sum(a.leads), 0)::bigint AS total
FROM account_counters a
WHERE a.account_id = $1

-- name: leads_tags_for_leads
-- structured_tags for a whole page in one query; grouped by lead_id in Python.
SELECT lt.lead_id, t.id, t.account_id, t.name, t.color, t.created_at, t.updated_at
FROM lead_tags lt
JOIN tags t ON t.id = lt.tag_id
WHERE lt.lead_id = ANY($1::uuid[]) AND t.account_id = $2
ORDER BY t.name, t.id

-- name: leads_get
SELECT l.id, l.account_id, l.contact_id, l.jid, l.name, l.last_name, l.short_name, l.phone, l.email,
       l.company, l.age, l.status, l.pipeline_id, l.stage_id, l.source, l.notes, l.tags, l.custom_fields,
       l.assigned_to, l.created_at, l.updated_at,
       ps.name AS stage_name, ps.color AS stage_color, ps.position AS stage_position
FROM leads l
LEFT JOIN pipeline_stages ps ON ps.id = l.stage_id
WHERE l.id = $1 AND l.account_id = $2

-- name: leads_get_json
-- R40: one lead as the dashboard's JSON object (wire_lead), tags included; no row = unknown or foreign id.
SELECT wire_lead(l, ps, (
           SELECT '[' || string_agg(wire_tag(t), ',' ORDER BY t.name, t.id) || ']'
           FROM lead_tags lt
           JOIN tags t ON t.id = lt.tag_id
           WHERE lt.lead_id = l.id AND t.account_id = $2)) AS body
FROM leads l
LEFT JOIN pipeline_stages ps ON ps.id = l.stage_id
WHERE l.id = $1 AND l.account_id = $2

-- name: leads_get_for_update
-- R41: the current row, locked for the read-modify-write of a partial update.
SELECT l.id, l.contact_id, l.name, l.last_name, l.short_name, l.phone, l.email, l.company, l.age,
       l.status, l.source, l.notes, l.tags, l.custom_fields, l.assigned_to, l.pipeline_id, l.stage_id,
       ps.pipeline_id AS stage_pipeline_id
FROM leads l
LEFT JOIN pipeline_stages ps ON ps.id = l.stage_id
WHERE l.id = $1 AND l.account_id = $2
FOR UPDATE OF l

-- name: leads_stage_of_account
-- A stage, only if its pipeline belongs to the account.
SELECT ps.id, ps.pipeline_id
FROM pipeline_stages ps
JOIN pipelines p ON p.id = ps.pipeline_id
WHERE ps.id = $1 AND p.account_id = $2

-- name: leads_pipeline_of_account
SELECT EXISTS (SELECT 1 FROM pipelines WHERE id = $1 AND account_id = $2) AS exists

-- name: leads_user_of_account
-- A user may be assigned when the account is their home account or they are a member of it.
SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND account_id = $2)
    OR EXISTS (SELECT 1 FROM user_accounts WHERE user_id = $1 AND account_id = $2) AS exists

-- name: leads_create
-- R38 upsert on (account_id, jid), in one statement. The contact with the same JID (if any) is linked and
-- fills the empty name/email and last_name/short_name/company/age (schema §5.4). Without a stage ($8 NULL)
-- the lead goes to the default pipeline's first stage; with one, only a stage of the account's pipelines is
-- taken (no row at all otherwise: 404) and the lead goes to its pipeline. On conflict only name (when
-- non-empty), phone, updated_at change, and a missing contact link is filled in.
-- $9: the webhook event id when the account has an enabled subscription (else NULL): the lead_update outbox
-- rows (webhook_outbox_insert's shape, one per matching subscription) are written by this same statement, so
-- they commit with the lead or not at all (docs/WEBHOOKS.md).
-- Returns ``id``, ``inserted``, ``body`` (the lead's JSON object as leads_get_json builds it) and ``recorded``
-- (outbox rows written). $1 account, $2 jid, $3 name, $4 phone, $5 email, $6 source, $7 notes.
WITH c AS (
    SELECT id,
           COALESCE(NULLIF(custom_name, ''), NULLIF(name, ''), NULLIF(push_name, ''), NULLIF(phone, ''), jid)
               AS display_name,
           email, last_name, short_name, company, age
    FROM contacts
    WHERE account_id = $1::uuid AND jid = $2::text
), d AS (
    SELECT p.id AS pipeline_id,
           (SELECT ps.id FROM pipeline_stages ps WHERE ps.pipeline_id = p.id
            ORDER BY ps.position, ps.created_at, ps.id LIMIT 1) AS stage_id
    FROM pipelines p
    WHERE p.account_id = $1::uuid AND p.is_default AND $8::uuid IS NULL
    ORDER BY p.created_at
    LIMIT 1
), s AS (
    SELECT ps.id AS stage_id, ps.pipeline_id
    FROM pipeline_stages ps
    JOIN pipelines p ON p.id = ps.pipeline_id
    WHERE ps.id = $8::uuid AND p.account_id = $1::uuid
), up AS (
    INSERT INTO leads (account_id, jid, contact_id, name, phone, email, source, notes, status, pipeline_id,
                       stage_id, last_name, short_name, company, age)
    SELECT $1::uuid, $2::text, c.id,
           CASE WHEN $3::text = '' THEN COALESCE(c.display_name, '') ELSE $3::text END,
           $4::text,
           CASE WHEN $5::text = '' THEN COALESCE(c.email, '') ELSE $5::text END,
           $6::text, $7::text, 'new',
           CASE WHEN $8::uuid IS NULL THEN d.pipeline_id ELSE s.pipeline_id END,
           CASE WHEN $8::uuid IS NULL THEN d.stage_id ELSE s.stage_id END,
           c.last_name, c.short_name, c.company, c.age
    FROM (SELECT 1) AS one
    LEFT JOIN c ON TRUE
    LEFT JOIN d ON TRUE
    LEFT JOIN s ON TRUE
    WHERE $8::uuid IS NULL OR s.stage_id IS NOT NULL
    ON CONFLICT (account_id, jid) DO UPDATE
    SET name = COALESCE(NULLIF(EXCLUDED.name, ''), leads.name),
        phone = EXCLUDED.phone,
        contact_id = COALESCE(leads.contact_id, EXCLUDED.contact_id),
        updated_at = now()
    RETURNING leads AS lead, leads.id, leads.stage_id, (xmax = 0) AS inserted
), outbox AS (
    INSERT INTO webhook_deliveries (account_id, webhook_id, event_id, event, data)
    SELECT $1::uuid, w.id, $9::uuid, 'lead_update',
           '{"action":"' || CASE WHEN up.inserted THEN 'created' ELSE 'updated' END || '","lead_id":"' || up.id || '"}'
    FROM up
    CROSS JOIN webhook_subscribers($1::uuid, 'lead_update') AS w
    WHERE $9::uuid IS NOT NULL
    ORDER BY w.id
    RETURNING 1
)
SELECT up.id, up.inserted,
       wire_lead(up.lead, ps, (
           SELECT '[' || string_agg(wire_tag(t), ',' ORDER BY t.name, t.id) || ']'
           FROM lead_tags lt
           JOIN tags t ON t.id = lt.tag_id
           WHERE lt.lead_id = up.id AND t.account_id = $1::uuid)) AS body,
       (SELECT count(*) FROM outbox) AS recorded
FROM up
LEFT JOIN pipeline_stages ps ON ps.id = up.stage_id

-- name: leads_update_all
-- R41: the merged row computed from the locked current row; every column written.
UPDATE leads
SET name = $3, last_name = $4, short_name = $5, phone = $6, email = $7, company = $8, age = $9,
    status = $10, source = $11, notes = $12, tags = $13::text[], custom_fields = $14::text::jsonb,
    assigned_to = $15, pipeline_id = $16, stage_id = $17, updated_at = now()
WHERE id = $1 AND account_id = $2
RETURNING contact_id

-- name: leads_sync_contact
-- Lead → contact (schema §5.5): non-null lead values overwrite the linked contact's fields.
UPDATE contacts c
SET custom_name = COALESCE(l.name, c.custom_name),
    last_name = COALESCE(l.last_name, c.last_name),
    short_name = COALESCE(l.short_name, c.short_name),
    phone = COALESCE(l.phone, c.phone),
    email = COALESCE(l.email, c.email),
    company = COALESCE(l.company, c.company),
    age = COALESCE(l.age, c.age),
    notes = COALESCE(l.notes, c.notes),
    updated_at = now()
FROM leads l
WHERE l.id = $1 AND l.account_id = $2 AND c.id = l.contact_id AND c.account_id = l.account_id

-- name: leads_set_status
UPDATE leads SET status = $3, updated_at = now()
WHERE id = $1 AND account_id = $2
RETURNING id

-- name: leads_set_stage
-- R44: the stage must belong to the account; the lead's pipeline follows the stage.
UPDATE leads l
SET stage_id = s.id, pipeline_id = s.pipeline_id, updated_at = now()
FROM (SELECT ps.id, ps.pipeline_id
      FROM pipeline_stages ps JOIN pipelines p ON p.id = ps.pipeline_id
      WHERE ps.id = $3 AND p.account_id = $2) AS s
WHERE l.id = $1 AND l.account_id = $2
RETURNING l.id

-- name: leads_exists
SELECT EXISTS (SELECT 1 FROM leads WHERE id = $1 AND account_id = $2) AS exists

-- name: leads_delete
DELETE FROM leads WHERE id = $1 AND account_id = $2 RETURNING id

-- name: leads_delete_ids
DELETE FROM leads WHERE account_id = $1 AND id = ANY($2::uuid[]) RETURNING id

-- name: leads_delete_all
WITH d AS (DELETE FROM leads WHERE account_id = $1 RETURNING 1)
SELECT count(*) AS deleted FROM d
