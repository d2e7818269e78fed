-- Idempotency keys (clarin/messaging/idempotency.py, sql/migrations/0004_idempotency.sql). Every statement is
-- scoped to $1 = account_id and served by the primary key (account_id, key), the purge by
-- idx_idempotency_keys_created. $3 on the claim statements is the request ("<METHOD> <path>"), the claim token
-- is a random uuid owned by one request.

-- name: idempotency_claim
-- First use of the key: the row is ours (RETURNING a row); an existing key returns nothing.
INSERT INTO idempotency_keys (account_id, key, request, claim)
VALUES ($1, $2, $3, $4)
ON CONFLICT (account_id, key) DO NOTHING
RETURNING claim

-- name: idempotency_get
-- The key as stored; `expired` past the TTL ($3 seconds), `stale` when its claim is older than $4 seconds.
SELECT k.request, k.claim, k.message_id, k.status_code, k.body,
       k.created_at < now() - make_interval(secs => $3::double precision) AS expired,
       k.created_at < now() - make_interval(secs => $4::double precision) AS stale
FROM idempotency_keys k
WHERE k.account_id = $1 AND k.key = $2

-- name: idempotency_take_over
-- Re-claim a key whose first request can no longer be running it: expired ($6 s TTL), or claimed more than $7 s
-- ago and nothing linked or answered (its request died before handing anything to WhatsApp). Compare-and-set on
-- the old claim ($5): of two concurrent re-claims one wins; a late link by the old request then fails.
UPDATE idempotency_keys k
SET request = $3, claim = $4, created_at = now(), message_id = NULL, status_code = NULL, body = NULL
WHERE k.account_id = $1 AND k.key = $2 AND k.claim = $5
  AND (k.created_at < now() - make_interval(secs => $6::double precision)
       OR (k.status_code IS NULL AND k.message_id IS NULL
           AND k.created_at < now() - make_interval(secs => $7::double precision)))
RETURNING k.claim

-- name: idempotency_complete
-- The first request's answer, stored once (a send's executor may have stored the same answer already).
UPDATE idempotency_keys k
SET status_code = $4, body = $5
WHERE k.account_id = $1 AND k.key = $2 AND k.claim = $3 AND k.status_code IS NULL

-- name: idempotency_release
-- The request ended before anything was handed to WhatsApp: forget the key, a retry runs afresh.
DELETE FROM idempotency_keys k
WHERE k.account_id = $1 AND k.key = $2 AND k.claim = $3 AND k.status_code IS NULL AND k.message_id IS NULL

-- name: idempotency_purge
-- Expired keys of one account ($3 s TTL), at most $2 rows per statement.
DELETE FROM idempotency_keys d
WHERE d.account_id = $1 AND d.key IN (
    SELECT k.key FROM idempotency_keys k
    WHERE k.account_id = $1 AND k.created_at < now() - make_interval(secs => $3::double precision)
    ORDER BY k.created_at
    LIMIT $2
)
