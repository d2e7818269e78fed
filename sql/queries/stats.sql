-- Dashboard counters (spec api.md §4.17 R114), all for the token's account in one statement.

-- name: stats_account_counts
SELECT (SELECT count(*) FROM leads WHERE account_id = $1) AS leads,
       (SELECT count(*) FROM contacts WHERE account_id = $1) AS contacts,
       (SELECT count(*) FROM devices WHERE account_id = $1 AND status = 'connected') AS connected_devices
