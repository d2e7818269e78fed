-- name: get_active_user_by_username
SELECT u.id::text AS id, u.account_id::text AS account_id, u.username, u.email, u.password_hash,
       u.display_name, u.is_admin, u.is_super_admin, u.role, u.token_version, a.name AS account_name,
       a.is_active AS account_active
FROM users u
JOIN accounts a ON a.id = u.account_id
WHERE u.username = $1 AND u.is_active

-- name: get_user_by_id
SELECT u.id::text AS id, u.account_id::text AS account_id, u.username, u.email, u.password_hash,
       u.display_name, u.is_admin, u.is_super_admin, u.role, u.is_active, u.token_version,
       a.name AS account_name
FROM users u
JOIN accounts a ON a.id = u.account_id
WHERE u.id = $1

-- name: list_user_memberships
SELECT ua.account_id::text AS account_id, a.name AS account_name, a.slug AS account_slug,
       ua.role, ua.is_default, a.is_active AS account_active
FROM user_accounts ua
JOIN accounts a ON a.id = ua.account_id
WHERE ua.user_id = $1
ORDER BY ua.is_default DESC, a.name ASC

-- name: get_user_membership
SELECT ua.role, a.name AS account_name, a.is_active AS account_active
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
-- A new password revokes every token issued before it (token_version, see clarin/auth/revocation.py).
UPDATE users SET password_hash = $2, token_version = token_version + 1, updated_at = now()
WHERE id = $1
RETURNING token_version

-- name: bump_token_version
-- Logout: every token of the user issued so far stops working.
UPDATE users SET token_version = token_version + 1 WHERE id = $1 RETURNING token_version

-- name: auth_token_state
-- The per-request revocation check (cached ~2 s per worker): the user's token version and flags and
-- the token account's is_active (NULL when the account no longer exists).
SELECT u.token_version, u.is_active AS user_active, u.is_super_admin, a.is_active AS account_active
FROM users u
LEFT JOIN accounts a ON a.id = $2
WHERE u.id = $1
