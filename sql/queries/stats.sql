-- Dashboard counters (spec api.md §4.17 R114), all for the token's account in one statement.

-- name: stats_account_counts
-- leads and contacts from the account's counter slots (0009_account_counters.sql: exact, kept in the writing
-- transaction), not a count(*) that grows with the account (3,846 blocks, 55 ms at 1M leads).
SELECT coalesce((SELECT sum(a.leads) FROM account_counters a WHERE a.account_id = $1), 0)::bigint AS leads,
       coalesce((SELECT sum(a.contacts) FROM account_counters a WHERE a.account_id = $1), 0)::bigint AS contacts,
       (SELECT count(*) FROM devices WHERE account_id = $1 AND status = 'connected') AS connected_devices
