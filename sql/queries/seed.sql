-- name: seed_find_user_by_username
SELECT id, account_id FROM users WHERE username = $1

-- name: seed_insert_account
INSERT INTO accounts (name, slug, plan, max_devices)
VALUES ('Default Account', 'default', 'enterprise', 200)
RETURNING id

-- name: seed_upsert_admin
INSERT INTO users (account_id, username, email, password_hash, display_name, is_admin, is_super_admin, role)
VALUES ($1, $2, $3, $4, 'Administrador', TRUE, TRUE, 'super_admin')
ON CONFLICT (email) DO UPDATE
SET password_hash = EXCLUDED.password_hash, is_super_admin = TRUE, role = 'super_admin', updated_at = now()
RETURNING id, account_id

-- name: seed_ensure_membership
INSERT INTO user_accounts (user_id, account_id, role, is_default)
VALUES ($1, $2, 'super_admin', TRUE)
ON CONFLICT (user_id, account_id) DO NOTHING

-- name: seed_default_pipeline_exists
SELECT EXISTS (SELECT 1 FROM pipelines WHERE account_id = $1 AND is_default) AS exists

-- name: create_default_pipeline
-- One statement: the pipeline and its six stages appear together or not at all.
WITH p AS (
    INSERT INTO pipelines (account_id, name, description, is_default)
    VALUES ($1, 'Pipeline Principal', 'Pipeline por defecto para leads', TRUE)
    RETURNING id
)
INSERT INTO pipeline_stages (pipeline_id, name, color, position)
SELECT p.id, s.name, s.color, s.position
FROM p, (VALUES ('Nuevo', '#6366f1', 0), ('Contactado', '#f59e0b', 1), ('En Negociación', '#3b82f6', 2),
                ('Propuesta', '#8b5cf6', 3), ('Cerrado', '#10b981', 4), ('Perdido', '#ef4444', 5))
     AS s(name, color, position)
RETURNING pipeline_id

-- name: assign_unstaged_leads_to_default
UPDATE leads l
SET pipeline_id = p.id, stage_id = first_stage.id, updated_at = now()
FROM pipelines p
JOIN LATERAL (
    SELECT ps.id FROM pipeline_stages ps WHERE ps.pipeline_id = p.id ORDER BY ps.position LIMIT 1
) first_stage ON TRUE
WHERE p.account_id = $1 AND p.is_default AND l.account_id = $1 AND l.pipeline_id IS NULL
