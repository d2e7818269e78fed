-- name: metrics_devices_by_status
-- GET /metrics (operators only): installation-wide device counts, deliberately across every account.
SELECT status, count(*) AS n FROM devices GROUP BY status ORDER BY status
