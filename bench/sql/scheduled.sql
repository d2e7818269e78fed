-- Scheduled messages bench (bench/scheduled.py): a scratch account with devices and a large history.

-- name: bench_scheduled_account
INSERT INTO accounts (name, slug) VALUES ($1, $2) RETURNING id

-- name: bench_scheduled_devices
INSERT INTO devices (account_id, name, status)
SELECT $1::uuid, 'bench ' || g, 'connected' FROM generate_series(1, $2::int) AS g
RETURNING id

-- name: bench_scheduled_fill
-- $3 rows over the devices $2: 90 % history (sent / failed / cancelled, the past 90 days), 10 % pending over the next
-- 30 days, and $4 pending rows due now (spread over the devices).
INSERT INTO scheduled_messages (account_id, device_id, to_jid, body, send_at, status, attempts, sent_at)
SELECT $1::uuid, ($2::uuid[])[1 + g % cardinality($2::uuid[])], '5199' || lpad(g::text, 8, '0') || '@s.whatsapp.net',
       'Recordatorio ' || g,
       CASE WHEN g % 10 = 0 THEN now() + (g % 43200) * interval '1 minute'
            ELSE now() - (g % 129600) * interval '1 minute' END,
       CASE WHEN g % 10 = 0 THEN 'pending' WHEN g % 10 = 1 THEN 'cancelled' WHEN g % 10 = 2 THEN 'failed' ELSE 'sent' END,
       CASE WHEN g % 10 IN (0, 1) THEN 0 ELSE 1 END,
       CASE WHEN g % 10 > 2 THEN now() - (g % 129600) * interval '1 minute' END
FROM generate_series(1, $3::int) AS g
UNION ALL
SELECT $1::uuid, ($2::uuid[])[1 + g % cardinality($2::uuid[])], '5198' || lpad(g::text, 8, '0') || '@s.whatsapp.net',
       'Due ' || g, now() - interval '1 second', 'pending', 0, NULL
FROM generate_series(1, $4::int) AS g

-- name: bench_scheduled_analyze
ANALYZE scheduled_messages
