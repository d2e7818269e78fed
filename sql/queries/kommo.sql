-- Kommo → Clarin sync (spec integrations.md A.5–A.16, api.md R105–R112). Every statement on a tenant table filters
-- account_id, except kommo_connected_enabled_all: the background poller's one read across all tenants (spec A.6).
-- Batch writes take parallel arrays and unnest them; "NULL in an array" means "keep the stored value".
-- Text arrays that hold a list per row (lead tags) are passed joined with chr(31) (unit separator).

-- name: kommo_custom_plans
-- First statement of every sync write transaction. The first sync fills empty tables: a generic plan cached while
-- a table was empty (estimate: 1 row per account) scans the whole account on every later page. Custom plans are
-- re-estimated from the table's current size each time (planning costs well under a millisecond).
SELECT set_config('plan_cache_mode', 'force_custom_plan', true) AS mode

-- name: kommo_connected_enabled_all
-- The poller's tick (A.6): enabled connected pipelines of ALL accounts (the only cross-tenant statement here).
SELECT account_id, kommo_pipeline_id, last_synced_at
FROM kommo_connected_pipelines
WHERE enabled
ORDER BY last_synced_at NULLS FIRST, account_id, kommo_pipeline_id
LIMIT $1

-- name: kommo_connected_list
-- R108: the tenant's rows (disabled included), with the local pipeline name.
SELECT k.id, k.account_id, k.kommo_pipeline_id, k.pipeline_id, p.name AS pipeline_name, k.enabled,
       k.last_synced_at, k.created_at
FROM kommo_connected_pipelines k
LEFT JOIN pipelines p ON p.id = k.pipeline_id AND p.account_id = $1
WHERE k.account_id = $1
ORDER BY k.created_at, k.id
LIMIT $2

-- name: kommo_connected_enabled_ids
-- R107 "connected" flags.
SELECT kommo_pipeline_id
FROM kommo_connected_pipelines
WHERE account_id = $1 AND enabled
ORDER BY kommo_pipeline_id
LIMIT $2

-- name: kommo_connect
-- R109 (A.7 step 3): re-connecting keeps last_synced_at (the cursor).
INSERT INTO kommo_connected_pipelines (account_id, kommo_pipeline_id, pipeline_id, enabled)
VALUES ($1, $2, $3, TRUE)
ON CONFLICT ON CONSTRAINT kommo_connected_pipelines_account_id_kommo_pipeline_id_key DO UPDATE
SET enabled = TRUE, pipeline_id = EXCLUDED.pipeline_id, updated_at = now()
RETURNING id, account_id, kommo_pipeline_id, pipeline_id, enabled, last_synced_at, created_at

-- name: kommo_disconnect
-- R110: a no-op when the row does not exist.
UPDATE kommo_connected_pipelines
SET enabled = FALSE, updated_at = now()
WHERE account_id = $1 AND kommo_pipeline_id = $2

-- name: kommo_cursor_get
SELECT last_synced_at, enabled
FROM kommo_connected_pipelines
WHERE account_id = $1 AND kommo_pipeline_id = $2

-- name: kommo_cursor_set
-- Advance only (a slower, older sync never moves the cursor back). $3 = when the successful sync started. Also takes
-- the pipeline's unannounced count (0007): returned as it was and cleared, in the transaction that writes the
-- kommo_synced outbox rows.
WITH old AS (
    SELECT unannounced FROM kommo_connected_pipelines
    WHERE account_id = $1 AND kommo_pipeline_id = $2
    FOR UPDATE
)
UPDATE kommo_connected_pipelines k
SET last_synced_at = CASE WHEN k.last_synced_at IS NULL OR k.last_synced_at < $3 THEN $3 ELSE k.last_synced_at END,
    unannounced = 0, updated_at = now()
FROM old
WHERE k.account_id = $1 AND k.kommo_pipeline_id = $2
RETURNING old.unannounced

-- name: kommo_unannounced_add
-- A page of a sync (for an account with a webhook subscription) changed $3 leads: counted in the page's transaction.
UPDATE kommo_connected_pipelines
SET unannounced = unannounced + $3
WHERE account_id = $1 AND kommo_pipeline_id = $2

-- name: kommo_unannounced_take
-- A sync cut short: its count (and any left by a killed one) returned and cleared, with the outbox rows.
WITH old AS (
    SELECT unannounced FROM kommo_connected_pipelines
    WHERE account_id = $1 AND kommo_pipeline_id = $2
    FOR UPDATE
)
UPDATE kommo_connected_pipelines k
SET unannounced = 0
FROM old
WHERE k.account_id = $1 AND k.kommo_pipeline_id = $2
RETURNING old.unannounced

-- name: kommo_connected_set_pipeline
UPDATE kommo_connected_pipelines
SET pipeline_id = $3, updated_at = now()
WHERE account_id = $1 AND kommo_pipeline_id = $2 AND pipeline_id IS DISTINCT FROM $3

-- name: kommo_clear_default
-- Only one default pipeline per account (idx_pipelines_one_default): cleared in the same transaction before the
-- Kommo main pipeline becomes the default.
UPDATE pipelines
SET is_default = FALSE, updated_at = now()
WHERE account_id = $1 AND is_default AND kommo_id IS DISTINCT FROM $2

-- name: kommo_pipeline_upsert
-- A.8: keyed by (account_id, kommo_id) (idx_pipelines_kommo_id).
INSERT INTO pipelines (account_id, name, is_default, kommo_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (account_id, kommo_id) WHERE kommo_id IS NOT NULL DO UPDATE
SET name = EXCLUDED.name, is_default = EXCLUDED.is_default, updated_at = now()
RETURNING id

-- name: kommo_stages_upsert
-- A.8 stages of one local pipeline of this account, keyed by (pipeline_id, kommo_id) — per pipeline, so two tenants
-- connecting the same Kommo pipeline each get their own stages. Unchanged stages are not rewritten.
INSERT INTO pipeline_stages (pipeline_id, name, color, position, kommo_id)
SELECT p.id, u.name, u.color, u.position, u.kommo_id
FROM unnest($3::bigint[], $4::text[], $5::text[], $6::int[]) AS u(kommo_id, name, color, position)
JOIN pipelines p ON p.id = $2 AND p.account_id = $1
ON CONFLICT (pipeline_id, kommo_id) WHERE kommo_id IS NOT NULL DO UPDATE
SET name = EXCLUDED.name, color = EXCLUDED.color, position = EXCLUDED.position, updated_at = now()
WHERE (pipeline_stages.name, pipeline_stages.color, pipeline_stages.position)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.color, EXCLUDED.position)
RETURNING id

-- name: kommo_mapping
-- Kommo pipeline / status ids → local pipeline / stage of this account (A.8 mapping for leads).
SELECT p.id AS pipeline_id, p.kommo_id AS kommo_pipeline_id, ps.id AS stage_id, ps.kommo_id AS kommo_status_id
FROM pipelines p
LEFT JOIN pipeline_stages ps ON ps.pipeline_id = p.id AND ps.kommo_id IS NOT NULL
WHERE p.account_id = $1 AND p.kommo_id IS NOT NULL
ORDER BY p.kommo_id, ps.kommo_id
LIMIT $2

-- name: kommo_tags_lookup
-- Lookups are a UNION of two index probes (idx_tags_kommo_id, tags_account_id_name_key) rather than one OR: the
-- first sync fills an empty table, and a plan cached while it was empty must still probe, never scan.
SELECT id, kommo_id, name FROM tags WHERE account_id = $1 AND kommo_id IS NOT NULL AND kommo_id = ANY($2::bigint[])
UNION
SELECT id, kommo_id, name FROM tags WHERE account_id = $1 AND name = ANY($3::text[])

-- name: kommo_tags_update
-- Rename by kommo_id, or adopt a same-named local tag (NULL kommo_id in the array keeps the stored one).
UPDATE tags t
SET name = u.name, kommo_id = COALESCE(u.kommo_id, t.kommo_id), updated_at = now()
FROM unnest($2::uuid[], $3::text[], $4::bigint[]) AS u(id, name, kommo_id)
WHERE t.id = u.id AND t.account_id = $1
  AND (t.name IS DISTINCT FROM u.name OR t.kommo_id IS DISTINCT FROM COALESCE(u.kommo_id, t.kommo_id))
RETURNING t.id

-- name: kommo_tags_insert
-- Colour #6366f1 (A.9). A row that a concurrent writer inserted first is skipped (re-read by name afterwards).
INSERT INTO tags (account_id, name, color, kommo_id)
SELECT $1, u.name, '#6366f1', u.kommo_id
FROM unnest($2::text[], $3::bigint[]) AS u(name, kommo_id)
ON CONFLICT DO NOTHING
RETURNING id, name, kommo_id

-- name: kommo_contacts_lookup
-- By Kommo id (idx_contacts_kommo_id) and by JID (contacts_account_id_jid_key), see kommo_tags_lookup.
SELECT id, kommo_id, jid, phone, email
FROM contacts WHERE account_id = $1 AND kommo_id IS NOT NULL AND kommo_id = ANY($2::bigint[])
UNION
SELECT id, kommo_id, jid, phone, email FROM contacts WHERE account_id = $1 AND jid = ANY($3::text[])

-- name: kommo_contacts_update
-- A.11 step 7: name/last_name/phone/email/jid only when Kommo has a value (NULL keeps); kommo_id always.
UPDATE contacts c
SET name = COALESCE(u.name, c.name),
    last_name = COALESCE(u.last_name, c.last_name),
    phone = COALESCE(u.phone, c.phone),
    email = COALESCE(u.email, c.email),
    jid = COALESCE(u.jid, c.jid),
    kommo_id = u.kommo_id,
    updated_at = now()
FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
     AS u(id, kommo_id, jid, phone, name, last_name, email)
WHERE c.id = u.id AND c.account_id = $1
  AND (c.name IS DISTINCT FROM COALESCE(u.name, c.name)
       OR c.last_name IS DISTINCT FROM COALESCE(u.last_name, c.last_name)
       OR c.phone IS DISTINCT FROM COALESCE(u.phone, c.phone)
       OR c.email IS DISTINCT FROM COALESCE(u.email, c.email)
       OR c.jid IS DISTINCT FROM COALESCE(u.jid, c.jid)
       OR c.kommo_id IS DISTINCT FROM u.kommo_id)
RETURNING c.id

-- name: kommo_contacts_insert
-- A.11 step 6.
INSERT INTO contacts (account_id, jid, phone, name, last_name, email, source, kommo_id, is_group)
SELECT $1, u.jid, u.phone, u.name, u.last_name, u.email, 'kommo', u.kommo_id, FALSE
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
     AS u(jid, phone, name, last_name, email, kommo_id)
RETURNING id, kommo_id

-- name: kommo_contact_tags_prune
-- Links of these contacts (probed through contact_tags_pkey) that are not in the new (contact_id, tag_id) set
-- (a hashed NOT IN).
DELETE FROM contact_tags ct
WHERE ct.contact_id = ANY($2::uuid[])
  AND EXISTS (SELECT 1 FROM contacts c WHERE c.id = ct.contact_id AND c.account_id = $1)
  AND (ct.contact_id, ct.tag_id) NOT IN (SELECT u.contact_id, u.tag_id FROM unnest($3::uuid[], $4::uuid[]) AS u(contact_id, tag_id))
RETURNING ct.contact_id

-- name: kommo_contact_tags_add
INSERT INTO contact_tags (contact_id, tag_id)
SELECT u.contact_id, u.tag_id
FROM unnest($2::uuid[], $3::uuid[]) AS u(contact_id, tag_id)
JOIN contacts c ON c.id = u.contact_id AND c.account_id = $1
JOIN tags t ON t.id = u.tag_id AND t.account_id = $1
ON CONFLICT DO NOTHING
RETURNING contact_id

-- name: kommo_leads_lookup
-- By Kommo id (idx_leads_kommo_id) and by JID (leads_account_id_jid_key), see kommo_tags_lookup.
SELECT id, kommo_id, jid FROM leads WHERE account_id = $1 AND kommo_id IS NOT NULL AND kommo_id = ANY($2::bigint[])
UNION
SELECT id, kommo_id, jid FROM leads WHERE account_id = $1 AND jid = ANY($3::text[])

-- name: kommo_leads_update
-- A.10 UPDATE column rules (NULL = keep); tags replaced only when Kommo sent ≥ 1. Unchanged rows are not
-- rewritten, so re-reading the overlap window neither bumps updated_at nor counts as a change.
UPDATE leads l
SET contact_id = COALESCE(u.contact_id, l.contact_id),
    jid = COALESCE(u.jid, l.jid),
    kommo_id = u.kommo_id,
    name = COALESCE(u.name, l.name),
    phone = COALESCE(u.phone, l.phone),
    email = COALESCE(u.email, l.email),
    pipeline_id = COALESCE(u.pipeline_id, l.pipeline_id),
    stage_id = COALESCE(u.stage_id, l.stage_id),
    tags = COALESCE(u.tags, l.tags),
    updated_at = now()
FROM (
    SELECT x.id, x.kommo_id, x.contact_id, x.jid, x.name, x.phone, x.email, x.pipeline_id, x.stage_id,
           string_to_array(x.tags, chr(31)) AS tags
    FROM unnest($2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::uuid[], $10::uuid[], $11::text[])
         AS x(id, kommo_id, contact_id, jid, name, phone, email, pipeline_id, stage_id, tags)
) AS u
WHERE l.id = u.id AND l.account_id = $1
  AND (l.contact_id IS DISTINCT FROM COALESCE(u.contact_id, l.contact_id)
       OR l.jid IS DISTINCT FROM COALESCE(u.jid, l.jid)
       OR l.kommo_id IS DISTINCT FROM u.kommo_id
       OR l.name IS DISTINCT FROM COALESCE(u.name, l.name)
       OR l.phone IS DISTINCT FROM COALESCE(u.phone, l.phone)
       OR l.email IS DISTINCT FROM COALESCE(u.email, l.email)
       OR l.pipeline_id IS DISTINCT FROM COALESCE(u.pipeline_id, l.pipeline_id)
       OR l.stage_id IS DISTINCT FROM COALESCE(u.stage_id, l.stage_id)
       OR l.tags IS DISTINCT FROM COALESCE(u.tags, l.tags))
RETURNING l.id

-- name: kommo_leads_insert
-- A.10 INSERT: status 'new', source 'kommo', notes ''.
INSERT INTO leads (account_id, kommo_id, contact_id, jid, name, phone, email, status, source, notes,
                   pipeline_id, stage_id, tags)
SELECT $1, u.kommo_id, u.contact_id, u.jid, u.name, u.phone, u.email, 'new', 'kommo', '',
       u.pipeline_id, u.stage_id, string_to_array(u.tags, chr(31))
FROM unnest($2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::uuid[], $9::uuid[],
            $10::text[])
     AS u(kommo_id, contact_id, jid, name, phone, email, pipeline_id, stage_id, tags)
RETURNING id, kommo_id

-- name: kommo_lead_tags_prune
-- See kommo_contact_tags_prune.
DELETE FROM lead_tags lt
WHERE lt.lead_id = ANY($2::uuid[])
  AND EXISTS (SELECT 1 FROM leads l WHERE l.id = lt.lead_id AND l.account_id = $1)
  AND (lt.lead_id, lt.tag_id) NOT IN (SELECT u.lead_id, u.tag_id FROM unnest($3::uuid[], $4::uuid[]) AS u(lead_id, tag_id))
RETURNING lt.lead_id

-- name: kommo_lead_tags_add
INSERT INTO lead_tags (lead_id, tag_id)
SELECT u.lead_id, u.tag_id
FROM unnest($2::uuid[], $3::uuid[]) AS u(lead_id, tag_id)
JOIN leads l ON l.id = u.lead_id AND l.account_id = $1
JOIN tags t ON t.id = u.tag_id AND t.account_id = $1
ON CONFLICT DO NOTHING
RETURNING lead_id

-- name: kommo_contacts_count
-- R112 result.contacts: the tenant's Kommo-linked contacts (A.15).
SELECT count(*)::int AS n FROM contacts WHERE account_id = $1 AND kommo_id IS NOT NULL
