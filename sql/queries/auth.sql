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
-- Own password change: the session that made it ($3) stays, every other session of the user ends.
-- token_version is left alone, so the caller's token (which the dashboard keeps using) stays valid.
WITH others AS (
    UPDATE user_sessions SET revoked_at = now()
    WHERE user_id = $1 AND id <> $3 AND revoked_at IS NULL
)
UPDATE users SET password_hash = $2, updated_at = now()
WHERE id = $1
RETURNING id

-- name: create_session
-- Login: a new session row (its id is the token's sid); the user's expired rows go in the same statement.
WITH expired AS (
    DELETE FROM user_sessions WHERE user_id = $1 AND expires_at < now()
)
INSERT INTO user_sessions (user_id, expires_at)
VALUES ($1, $2)
RETURNING id::text AS id

-- name: revoke_session
-- Logout: this session only.
UPDATE user_sessions SET revoked_at = now()
WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL
RETURNING id

-- name: sweep_expired_sessions
-- Maintenance across users (no tenant data is read or returned): at most $1 expired rows per call,
-- oldest first, so one sweep never holds locks on a large backlog.
WITH doomed AS (
    SELECT id FROM user_sessions WHERE expires_at < now() ORDER BY expires_at LIMIT $1
    FOR UPDATE SKIP LOCKED
)
DELETE FROM user_sessions s USING doomed WHERE s.id = doomed.id
RETURNING s.id

-- name: auth_token_state
-- The per-request revocation check (cached ~2 s per worker): the user's token version and flags, the
-- token account's is_active (NULL when the account no longer exists), whether the user still belongs to
-- that account (a user_accounts row; with no rows at all, the home users.account_id, as login decides),
-- and whether the token's session is still open (NULL when there is no such session of this user).
SELECT u.token_version, u.is_active AS user_active, u.is_super_admin, a.is_active AS account_active,
       (EXISTS (SELECT 1 FROM user_accounts m WHERE m.user_id = u.id AND m.account_id = $2)
        OR (u.account_id = $2 AND NOT EXISTS (SELECT 1 FROM user_accounts m WHERE m.user_id = u.id)))
           AS is_member,
       (SELECT s.revoked_at IS NULL AND s.expires_at > now()
        FROM user_sessions s WHERE s.id = $3 AND s.user_id = u.id) AS session_active
FROM users u
LEFT JOIN accounts a ON a.id = $2
WHERE u.id = $1
