-- name: stickers_recent
-- Distinct sticker URLs of the account's messages, by URL descending (spec R31: not by time).
-- Served by the partial index idx_messages_account_sticker (account_id, media_url) WHERE message_type = 'sticker'.
SELECT DISTINCT media_url
FROM messages
WHERE account_id = $1 AND message_type = 'sticker' AND media_url IS NOT NULL AND media_url <> ''
ORDER BY media_url DESC
LIMIT $2 OFFSET $3

-- name: stickers_saved_list
SELECT media_url
FROM saved_stickers
WHERE account_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2 OFFSET $3

-- name: stickers_save
INSERT INTO saved_stickers (account_id, media_url)
VALUES ($1, $2)
ON CONFLICT (account_id, media_url) DO NOTHING

-- name: stickers_unsave
DELETE FROM saved_stickers
WHERE account_id = $1 AND media_url = $2
