-- name: database_exists
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists

-- name: create_clarin_database
CREATE DATABASE clarin

-- name: ping
SELECT 1 AS ok
