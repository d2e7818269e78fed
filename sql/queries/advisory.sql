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
