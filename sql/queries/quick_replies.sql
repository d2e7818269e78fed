-- Quick replies (R101–R104), always scoped to the caller's account. List order served by idx_quick_replies_account.

-- name: quick_replies_list
SELECT id, account_id, shortcut, title, body, created_at, updated_at
FROM quick_replies
WHERE account_id = $1
ORDER BY shortcut, id
LIMIT $2 OFFSET $3

-- name: quick_reply_create
INSERT INTO quick_replies (account_id, shortcut, title, body)
VALUES ($1, $2, $3, $4)
RETURNING id, account_id, shortcut, title, body, created_at, updated_at

-- name: quick_reply_update
-- Partial: NULL keeps the column.
UPDATE quick_replies
SET shortcut = COALESCE($3::text, shortcut),
    title = COALESCE($4::text, title),
    body = COALESCE($5::text, body),
    updated_at = now()
WHERE id = $1 AND account_id = $2
RETURNING id, account_id, shortcut, title, body, created_at, updated_at

-- name: quick_reply_delete
DELETE FROM quick_replies WHERE id = $1 AND account_id = $2 RETURNING id
