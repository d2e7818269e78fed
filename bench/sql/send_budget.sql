-- Send budget bench (bench/send_budget.py): a scratch account and devices, a device's ledger pre-filled.

-- name: bench_budget_account
INSERT INTO accounts (name, slug) VALUES ($1, $2) RETURNING id

-- name: bench_budget_device
INSERT INTO devices (account_id, name, status) VALUES ($1, 'bench', 'connected') RETURNING id

-- name: bench_budget_fill
-- $3 sends spread over the last day, half cold, each to its own chat.
INSERT INTO device_sends (device_id, account_id, chat_jid, kind, outcome, sent_at)
SELECT $1, $2, '5199' || lpad(g::text, 8, '0') || '@s.whatsapp.net', CASE WHEN g % 2 = 0 THEN 'cold' ELSE 'reply' END,
       'sent', now() - (g::float8 / GREATEST($3::int, 1)) * interval '23 hours'
FROM generate_series(1, $3::int) AS g

-- name: bench_budget_explain
-- The day window's count of budget_reserve with a limit no number reaches (every row of the day counted).
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT count(*) FROM (
    SELECT 1 FROM device_sends s
    WHERE s.device_id = $1 AND s.account_id = $2 AND s.kind = 'cold' AND s.sent_at > now() - interval '1 day'
    LIMIT 1000000) d
