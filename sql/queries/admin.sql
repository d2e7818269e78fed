-- name: admin_list_accounts
-- Counts come from grouped subqueries joined once, not from three correlated COUNTs per row.
SELECT a.id, a.name, a.slug, a.plan, a.max_devices, a.is_active, a.created_at, a.updated_at,
       COALESCE(u.n, 0) AS user_count, COALESCE(d.n, 0) AS device_count, COALESCE(c.n, 0) AS chat_count
FROM accounts a
LEFT JOIN (SELECT account_id, count(*) AS n FROM users GROUP BY account_id) u ON u.account_id = a.id
LEFT JOIN (SELECT account_id, count(*) AS n FROM devices GROUP BY account_id) d ON d.account_id = a.id
LEFT JOIN (SELECT account_id, count(*) AS n FROM chats GROUP BY account_id) c ON c.account_id = a.id
ORDER BY a.created_at DESC, a.id
LIMIT $1 OFFSET $2

-- name: admin_get_account
SELECT a.id, a.name, a.slug, a.plan, a.max_devices, a.is_active, a.created_at, a.updated_at,
       (SELECT count(*) FROM users WHERE account_id = a.id) AS user_count,
       (SELECT count(*) FROM devices WHERE account_id = a.id) AS device_count,
       (SELECT count(*) FROM chats WHERE account_id = a.id) AS chat_count
FROM accounts a
WHERE a.id = $1

-- name: admin_create_account
INSERT INTO accounts (name, slug, plan, max_devices, is_active)
VALUES ($1, $2, $3, $4, TRUE)
RETURNING id, name, slug, plan, max_devices, is_active, created_at, updated_at

-- name: admin_update_account
UPDATE accounts
SET name = COALESCE($2, name),
    slug = COALESCE($3, slug),
    plan = COALESCE($4, plan),
    max_devices = COALESCE($5, max_devices),
    updated_at = now()
WHERE id = $1
RETURNING id, name, slug, plan, max_devices, is_active, created_at, updated_at

-- name: admin_toggle_account
UPDATE accounts SET is_active = NOT is_active, updated_at = now() WHERE id = $1 RETURNING is_active

-- name: admin_account_usage
SELECT (SELECT count(*) FROM users WHERE account_id = $1) AS users,
       (SELECT count(*) FROM devices WHERE account_id = $1) AS devices,
       (SELECT count(*) FROM chats WHERE account_id = $1) AS chats

-- name: admin_delete_account
DELETE FROM accounts WHERE id = $1 RETURNING id

-- name: admin_list_users
SELECT u.id, u.account_id, u.username, u.email, u.display_name, u.role, u.is_admin, u.is_super_admin,
       u.is_active, u.created_at, u.updated_at, a.name AS account_name
FROM users u
JOIN accounts a ON a.id = u.account_id
WHERE ($1::uuid IS NULL OR u.account_id = $1)
ORDER BY u.created_at DESC, u.id
LIMIT $2 OFFSET $3

-- name: admin_account_exists
SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1) AS exists

-- name: admin_create_user
WITH u AS (
    INSERT INTO users (account_id, username, email, password_hash, display_name, role, is_admin, is_super_admin)
    VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE)
    RETURNING id, account_id, username, email, display_name, role, is_admin, is_super_admin, is_active,
              created_at, updated_at
), link AS (
    INSERT INTO user_accounts (user_id, account_id, role, is_default)
    SELECT u.id, u.account_id, u.role, TRUE FROM u
)
SELECT u.id, u.account_id, u.username, u.email, u.display_name, u.role, u.is_admin, u.is_super_admin,
       u.is_active, u.created_at, u.updated_at, a.name AS account_name
FROM u JOIN accounts a ON a.id = u.account_id

-- name: admin_update_user
UPDATE users
SET username = COALESCE($2, username),
    email = COALESCE($3, email),
    display_name = COALESCE($4, display_name),
    role = COALESCE($5, role),
    is_admin = CASE WHEN $5::text IS NULL THEN is_admin ELSE $5::text IN ('admin', 'super_admin') END,
    -- A role change revokes the user's tokens (they carry the old role).
    token_version = token_version + CASE WHEN $5::text IS NOT NULL AND $5::text <> role THEN 1 ELSE 0 END,
    updated_at = now()
WHERE id = $1
RETURNING id

-- name: admin_toggle_user
-- Either way the user's current tokens end: deactivated now, or issued before a deactivation.
UPDATE users SET is_active = NOT is_active, token_version = token_version + 1, updated_at = now()
WHERE id = $1
RETURNING is_active

-- name: admin_set_user_password
UPDATE users SET password_hash = $2, token_version = token_version + 1, updated_at = now()
WHERE id = $1
RETURNING id

-- name: admin_bump_token_version
-- Membership removed or its role changed: the user's tokens (which name account and role) end.
UPDATE users SET token_version = token_version + 1 WHERE id = $1 RETURNING token_version

-- name: admin_membership_role
SELECT role FROM user_accounts WHERE user_id = $1 AND account_id = $2

-- name: admin_get_user_flags
SELECT id, is_super_admin FROM users WHERE id = $1

-- name: admin_delete_user
DELETE FROM users WHERE id = $1 RETURNING id

-- name: admin_list_user_accounts
SELECT ua.id, ua.account_id, a.name AS account_name, ua.role, ua.is_default
FROM user_accounts ua
JOIN accounts a ON a.id = ua.account_id
WHERE ua.user_id = $1
ORDER BY ua.is_default DESC, a.name ASC

-- name: admin_user_exists
SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) AS exists

-- name: admin_link_user_account
INSERT INTO user_accounts (user_id, account_id, role, is_default)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, account_id) DO UPDATE SET role = EXCLUDED.role, updated_at = now()

-- name: admin_clear_other_defaults
UPDATE user_accounts SET is_default = FALSE, updated_at = now()
WHERE user_id = $1 AND account_id <> $2 AND is_default

-- name: admin_set_default_link
UPDATE user_accounts SET is_default = TRUE, updated_at = now() WHERE user_id = $1 AND account_id = $2

-- name: admin_unlink_user_account
DELETE FROM user_accounts WHERE user_id = $1 AND account_id = $2 RETURNING id
