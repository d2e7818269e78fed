-- Pipelines and stages (R46–R53). Stages have no account_id: every stage statement joins its pipeline and filters
-- pipelines.account_id, so a stage id of another pipeline or tenant never matches.

-- name: pipelines_list
-- Kommo-linked pipelines are shown only while connected and enabled for this account (R46); the EXISTS probe uses
-- kommo_connected_pipelines_account_id_kommo_pipeline_id_key. Ordered by idx_pipelines_account.
SELECT p.id, p.account_id, p.name, p.description, p.is_default, p.kommo_id, p.created_at, p.updated_at
FROM pipelines p
WHERE p.account_id = $1
  AND (p.kommo_id IS NULL OR EXISTS (
        SELECT 1 FROM kommo_connected_pipelines k
        WHERE k.account_id = $1 AND k.kommo_pipeline_id = p.kommo_id AND k.enabled))
ORDER BY p.created_at, p.id
LIMIT $2

-- name: pipeline_stages_of
-- Stages of the given pipelines (idx_pipeline_stages_pipeline) with their lead counts: one LATERAL index-only count
-- per stage on idx_leads_account_stage_created, all in this one statement (no query per pipeline or stage).
SELECT ps.id, ps.pipeline_id, ps.name, ps.color, ps.position, ps.created_at, c.n AS lead_count
FROM pipeline_stages ps
JOIN pipelines p ON p.id = ps.pipeline_id AND p.account_id = $2
CROSS JOIN LATERAL (
    SELECT count(*)::int AS n FROM leads l WHERE l.account_id = $2 AND l.stage_id = ps.id
) c
WHERE ps.pipeline_id = ANY($1::uuid[])
ORDER BY ps.pipeline_id, ps.position, ps.created_at, ps.id

-- name: pipeline_create
INSERT INTO pipelines (account_id, name, description, is_default)
VALUES ($1, $2, $3, FALSE)
RETURNING id, account_id, name, description, is_default, kommo_id, created_at, updated_at

-- name: pipeline_update
-- Partial: NULL keeps the column; an empty description clears it.
UPDATE pipelines
SET name = COALESCE($3::text, name),
    description = CASE WHEN $4::text IS NULL THEN description ELSE NULLIF($4::text, '') END,
    updated_at = now()
WHERE id = $1 AND account_id = $2
RETURNING id, account_id, name, description, is_default, kommo_id, created_at, updated_at

-- name: pipeline_lock
SELECT id FROM pipelines WHERE id = $1 AND account_id = $2 FOR UPDATE

-- name: pipeline_detach_leads
-- Leads of the pipeline (or of one of its stages) lose pipeline and stage; returns how many and up to $3 of their ids.
WITH u AS (
    UPDATE leads
    SET pipeline_id = NULL, stage_id = NULL, updated_at = now()
    WHERE account_id = $2
      AND (pipeline_id = $1 OR stage_id = ANY (ARRAY(SELECT ps.id FROM pipeline_stages ps WHERE ps.pipeline_id = $1)))
    RETURNING id
)
SELECT count(*)::int AS n, ARRAY(SELECT u2.id FROM u u2 LIMIT $3) AS ids FROM u

-- name: pipeline_delete
-- Stages go by FK CASCADE; kommo_connected_pipelines.pipeline_id by SET NULL.
DELETE FROM pipelines WHERE id = $1 AND account_id = $2 RETURNING id

-- name: stage_create
-- position = current max + 1 (0 when the pipeline has none), computed in this statement. No row: unknown pipeline.
INSERT INTO pipeline_stages (pipeline_id, name, color, position)
SELECT p.id, $3, $4,
       COALESCE((SELECT max(ps.position) + 1 FROM pipeline_stages ps WHERE ps.pipeline_id = p.id), 0)
FROM pipelines p
WHERE p.id = $1 AND p.account_id = $2
RETURNING id, pipeline_id, name, color, position, created_at

-- name: stage_update
-- Partial update of a stage of this pipeline of this account; returns the stored row with its lead count.
UPDATE pipeline_stages ps
SET name = COALESCE($4::text, ps.name),
    color = COALESCE($5::text, ps.color),
    position = COALESCE($6::int, ps.position),
    updated_at = now()
FROM pipelines p
WHERE ps.id = $1 AND ps.pipeline_id = $2 AND p.id = ps.pipeline_id AND p.account_id = $3
RETURNING ps.id, ps.pipeline_id, ps.name, ps.color, ps.position, ps.created_at,
          (SELECT count(*)::int FROM leads l WHERE l.account_id = $3 AND l.stage_id = ps.id) AS lead_count

-- name: stages_reorder
-- Each id gets its 0-based index in $3; ids of other pipelines are ignored. found = 0: unknown pipeline.
WITH p AS (
    SELECT id FROM pipelines WHERE id = $1 AND account_id = $2
), u AS (
    UPDATE pipeline_stages ps
    SET position = (o.ord - 1)::int, updated_at = now()
    FROM unnest($3::uuid[]) WITH ORDINALITY AS o(id, ord), p
    WHERE ps.pipeline_id = p.id AND ps.id = o.id
    RETURNING ps.id
)
SELECT (SELECT count(*)::int FROM p) AS found, (SELECT count(*)::int FROM u) AS updated

-- name: stage_lock
SELECT ps.id
FROM pipeline_stages ps
JOIN pipelines p ON p.id = ps.pipeline_id
WHERE ps.id = $1 AND ps.pipeline_id = $2 AND p.account_id = $3
FOR UPDATE OF ps

-- name: stage_detach_leads
-- Leads of the stage keep their pipeline; returns how many and up to $3 of their ids.
WITH u AS (
    UPDATE leads SET stage_id = NULL, updated_at = now()
    WHERE account_id = $2 AND stage_id = $1
    RETURNING id
)
SELECT count(*)::int AS n, ARRAY(SELECT u2.id FROM u u2 LIMIT $3) AS ids FROM u

-- name: stage_delete
DELETE FROM pipeline_stages WHERE id = $1 AND pipeline_id = $2 RETURNING id
