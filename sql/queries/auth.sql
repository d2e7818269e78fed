-- name: get_active_user_by_username
SELECT u.id::text AS id, u.account_id::text AS account_id, u.username, u.email, u.password_hash,
       u.display_name, u.is_admin, u.is_super_admin, u.role, a.name AS account_name
FROM users u
JOIN accounts a ON a.id = u.account_id
WHERE u.username = $1 AND u.is_active

-- name: get_user_by_id
SELECT u.id::text AS id, u.account_id::text AS account_id, u.username, u.email, u.password_hash,
       u.display_name, u.is_admin, u.is_super_admin, u.role, u.is_active, a.name AS account_name
FROM users u
JOIN accounts a ON a.id = u.account_id
WHERE u.id = $1

-- name: list_user_memberships
SELECT ua.account_id::text AS account_id, a.name AS account_name, a.slug AS account_slug,
       ua.role, ua.is_default
FROM user_accounts ua
JOIN accounts a ON a.id = ua.account_id
WHERE ua.user_id = $1
ORDER BY ua.is_default DESC, a.name ASC

-- name: get_user_membership
SELECT ua.role, a.name AS account_name
FROM user_accounts ua
JOIN accounts a ON a.id = ua.account_id
WHERE ua.user_id = $1 AND ua.account_id = $2

-- name: get_account_summary
SELECT id::text AS id, name, slug, plan, created_at
FROM accounts
WHERE id = $1

-- name: update_user_profile
UPDATE users
SET display_name = COALESCE($2, display_name),
    email = COALESCE($3, email),
    updated_at = now()
WHERE id = $1
RETURNING id

-- name: rename_account
UPDATE accounts SET name = $2, updated_at = now() WHERE id = $1 RETURNING id

-- name: get_user_password_hash
SELECT password_hash FROM users WHERE id = $1

-- name: set_user_password
UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1 RETURNING id
