-- Session advisory locks on a dedicated connection (clarin.db.advisory). Keys are text, hashed to bigint;
-- callers build them as '<kind>:<id>' (e.g. 'clarin-device:<uuid>'), the same hash the keys always had.

-- name: advisory_try
SELECT pg_try_advisory_lock(hashtextextended($1::text, 0)) AS acquired

-- name: advisory_unlock
SELECT pg_advisory_unlock(hashtextextended($1::text, 0)) AS released

-- name: advisory_unlock_all
SELECT count(*) AS released FROM (SELECT pg_advisory_unlock_all()) AS s

-- name: advisory_ping
SELECT 1 AS ok

-- name: advisory_setting
-- Server-side TCP keepalive of the lock session, so a vanished owner host releases its locks in time.
SELECT set_config($1, $2, false) AS value

-- name: advisory_try_pair
-- Two-key form (key space $1, key $2): pg_locks shows it as classid = $1, objid = $2, objsubid = 2, so the
-- holders of one key space can be listed (advisory_holders) — the hashed text keys above cannot.
SELECT pg_try_advisory_lock($1::int, $2::int) AS acquired

-- name: advisory_holders
-- The keys of key space $1 held by other sessions of this database (the live peers, clarin.whatsapp.peers).
SELECT l.objid::bigint AS key
FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid = $1::bigint::oid AND l.granted
  AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
  AND l.pid <> pg_backend_pid()

-- name: advisory_wait_released
-- Blocks until the holder of ($1, $2) lets go — its session ended — then lets go itself.
SELECT pg_advisory_unlock_shared($1::int, $2::int) AS released
FROM (SELECT pg_advisory_lock_shared($1::int, $2::int)) AS waited  -- volatile: evaluated first, never inlined

-- name: advisory_check_client
-- A waiting watcher's backend notices its client went away (shutdown) within a second, not at the lock grant.
SELECT set_config('client_connection_check_interval', '1000', false) AS value
