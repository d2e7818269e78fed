-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: migration_lock
-- Tried, not waited for: a session blocked in pg_advisory_lock is a running statement, and CREATE INDEX
-- CONCURRENTLY in the lock holder's no-transaction migration waits for every running statement to end.
SELECT pg_try_advisory_lock($1) AS locked

-- name: migration_unlock
SELECT pg_advisory_unlock($1) AS unlocked

-- name: list_applied_migrations
SELECT version, name, checksum FROM schema_migrations ORDER BY version

-- name: record_migration
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)

-- name: missing_extensions
-- The extensions of $1 this server cannot install (not in pg_available_extensions).
SELECT array_agg(wanted ORDER BY wanted) AS missing
FROM unnest($1::text[]) AS wanted
WHERE NOT EXISTS (SELECT 1 FROM pg_available_extensions e WHERE e.name = wanted)
