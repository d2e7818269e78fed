-- Devices (api.md §4.2) and the WhatsApp device pool (integrations.md B.2–B.4, B.11).
--
-- Device lease: a session-level advisory lock on key hashtextextended('clarin-device:' || <device id>, 0),
-- held by the owning process on its dedicated lease connection (clarin/whatsapp/lease.py). "leased" columns
-- tell whether ANY session of this database holds a device's lock: they read pg_locks, where a bigint
-- advisory key appears as classid (high 32 bits) / objid (low 32 bits) with objsubid = 1.

-- name: list_devices
SELECT d.id, d.account_id, d.name, d.phone, d.jid, d.status, d.qr_code, d.last_seen_at, d.created_at,
       d.updated_at, (l.key IS NOT NULL) AS leased
FROM devices d
LEFT JOIN (
    SELECT DISTINCT (classid::bigint << 32) | objid::bigint AS key
    FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
) l ON l.key = hashtextextended('clarin-device:' || d.id::text, 0)
WHERE d.account_id = $1
ORDER BY d.created_at DESC, d.id
LIMIT $2 OFFSET $3

-- name: get_device
SELECT d.id, d.account_id, d.name, d.phone, d.jid, d.status, d.qr_code, d.last_seen_at, d.created_at,
       d.updated_at,
       EXISTS (
           SELECT 1 FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND objsubid = 1
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND (classid::bigint << 32) | objid::bigint = hashtextextended('clarin-device:' || d.id::text, 0)
       ) AS leased
FROM devices d
WHERE d.id = $1 AND d.account_id = $2

-- name: create_device
INSERT INTO devices (account_id, name, status)
VALUES ($1, $2, 'disconnected')
RETURNING id, account_id, name, phone, jid, status, qr_code, last_seen_at, created_at, updated_at

-- name: rename_device
UPDATE devices SET name = $3, updated_at = now()
WHERE id = $1 AND account_id = $2
RETURNING id

-- name: delete_device
-- Cascades (schema): campaigns of the device (+ recipients/attachments), contact_device_names;
-- chats/messages/contacts keep their rows with device_id set NULL.
DELETE FROM devices WHERE id = $1 AND account_id = $2 RETURNING id

-- name: device_set_status
UPDATE devices SET status = $3, updated_at = now()
WHERE id = $1 AND account_id = $2

-- name: device_set_qr
UPDATE devices SET status = 'connecting', qr_code = $3, updated_at = now()
WHERE id = $1 AND account_id = $2

-- name: device_set_connected
-- The stale pairing QR is cleared on connect (fixes B.17 quirk 6).
UPDATE devices
SET status = 'connected', jid = $3, phone = $4, qr_code = NULL, last_seen_at = now(), updated_at = now()
WHERE id = $1 AND account_id = $2

-- name: device_mark_disconnected_if_live
-- A disconnect for a device no process holds: stop it from being taken over (status no longer live).
UPDATE devices SET status = 'disconnected', updated_at = now()
WHERE id = $1 AND account_id = $2 AND status IN ('connected', 'connecting')

-- name: devices_to_reconnect
-- Worker start-up (B.4 "startup auto-reconnect"), across ALL tenants by design: every paired device
-- (stored jid) that is not logged out and that no process holds.
SELECT d.id, d.account_id, d.jid, d.status
FROM devices d
WHERE d.jid IS NOT NULL AND d.jid <> '' AND d.status <> 'logged_out'
  AND NOT EXISTS (
      SELECT 1 FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND objsubid = 1
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND (classid::bigint << 32) | objid::bigint = hashtextextended('clarin-device:' || d.id::text, 0)
  )
ORDER BY d.created_at, d.id
LIMIT $1

-- name: devices_to_take_over
-- Periodic take-over, across ALL tenants by design: paired devices whose last known status is live
-- (their owner wrote connected/connecting and never a manual disconnect) but that no process holds,
-- i.e. their owner died or shut down.
SELECT d.id, d.account_id, d.jid, d.status
FROM devices d
WHERE d.jid IS NOT NULL AND d.jid <> '' AND d.status IN ('connected', 'connecting')
  AND NOT EXISTS (
      SELECT 1 FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND objsubid = 1
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND (classid::bigint << 32) | objid::bigint = hashtextextended('clarin-device:' || d.id::text, 0)
  )
ORDER BY d.created_at, d.id
LIMIT $1

-- name: device_lease_held
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND (classid::bigint << 32) | objid::bigint = hashtextextended('clarin-device:' || $1::uuid::text, 0)
) AS held

-- name: upsert_device_contacts
-- Device contact sync (B.11), one statement per batch: contacts upserted on (account_id, jid) with the
-- B.7.9 overwrite rules (name/push_name/phone replaced only by non-empty values; device_id kept on
-- conflict), then one contact_device_names row per contact and device (name/push_name always written,
-- business_name only when non-empty). Input arrays must not repeat a jid. Returns the upserted count.
WITH input AS (
    SELECT t.jid, t.phone, t.name, t.push_name, t.business_name
    FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
         AS t(jid, phone, name, push_name, business_name)
    WHERE EXISTS (SELECT 1 FROM devices WHERE id = $2 AND account_id = $1)
), upserted AS (
    INSERT INTO contacts (account_id, device_id, jid, phone, name, push_name, is_group)
    SELECT $1::uuid, $2::uuid, i.jid, NULLIF(i.phone, ''), NULLIF(i.name, ''), NULLIF(i.push_name, ''), false
    FROM input i
    ON CONFLICT (account_id, jid) DO UPDATE
    SET name = COALESCE(EXCLUDED.name, contacts.name),
        push_name = COALESCE(EXCLUDED.push_name, contacts.push_name),
        phone = COALESCE(EXCLUDED.phone, contacts.phone),
        updated_at = now()
    RETURNING id, jid
), names AS (
    INSERT INTO contact_device_names (contact_id, device_id, name, push_name, business_name)
    SELECT u.id, $2::uuid, i.name, i.push_name, NULLIF(i.business_name, '')
    FROM upserted u
    JOIN input i ON i.jid = u.jid
    ON CONFLICT (contact_id, device_id) DO UPDATE
    SET name = EXCLUDED.name,
        push_name = EXCLUDED.push_name,
        business_name = COALESCE(EXCLUDED.business_name, contact_device_names.business_name),
        synced_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM upserted) AS count, (SELECT count(*) FROM names) AS names

-- name: device_run_state
-- A call for a device no process answered: is its lease held (by another process), and if not, will a take-over
-- resume it (paired, last status live: its owner lost its lease session or died)? Scoped to the account ($2).
SELECT EXISTS (
           SELECT 1 FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND objsubid = 1
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND (classid::bigint << 32) | objid::bigint = hashtextextended('clarin-device:' || d.id::text, 0)
       ) AS held,
       (d.jid IS NOT NULL AND d.jid <> '' AND d.status IN ('connected', 'connecting')) AS resumable
FROM devices d
WHERE d.id = $1 AND d.account_id = $2
