-- Campaigns (api.md §4.10, R97; integrations.md C). Every statement is scoped to the caller's account
-- ($1 = account_id) or, for the worker, to a campaign it has claimed. The worker's per-campaign lock is a
-- session advisory lock on key hashtextextended('clarin-campaign:' || <campaign id>, 0), held on the
-- worker's dedicated lock connection (clarin/campaigns/locks.py).

-- name: campaigns_list
-- R61: newest campaigns of the account ($2 = limit).
SELECT c.id, c.account_id, c.device_id, c.event_id, c.source, c.name, c.message_template, c.media_url, c.media_type,
       c.status, c.scheduled_at, c.started_at, c.completed_at, c.total_recipients, c.sent_count, c.failed_count,
       c.settings, c.created_at, c.updated_at, d.name AS device_name
FROM campaigns c
LEFT JOIN devices d ON d.id = c.device_id
WHERE c.account_id = $1
ORDER BY c.created_at DESC, c.id
LIMIT $2

-- name: campaign_get
SELECT c.id, c.account_id, c.device_id, c.event_id, c.source, c.name, c.message_template, c.media_url, c.media_type,
       c.status, c.scheduled_at, c.started_at, c.completed_at, c.total_recipients, c.sent_count, c.failed_count,
       c.settings, c.created_at, c.updated_at, d.name AS device_name
FROM campaigns c
LEFT JOIN devices d ON d.id = c.device_id
WHERE c.account_id = $1 AND c.id = $2

-- name: campaign_lock_row
-- Serialises writes to one campaign (status changes, recipient adds/removes, updates).
SELECT c.id, c.device_id, c.status, c.name, c.message_template, c.media_url, c.media_type, c.scheduled_at,
       c.settings, c.total_recipients
FROM campaigns c
WHERE c.account_id = $1 AND c.id = $2
FOR UPDATE

-- name: campaign_attachments_for
-- Attachments of a page of campaigns ($2), in send order.
SELECT a.id, a.campaign_id, a.media_url, a.media_type, a.caption, a.file_name, a.file_size, a.position, a.created_at
FROM campaign_attachments a
JOIN campaigns c ON c.id = a.campaign_id
WHERE c.account_id = $1 AND a.campaign_id = ANY($2::uuid[])
ORDER BY a.campaign_id, a.position, a.created_at, a.id

-- name: campaign_device_owned
SELECT d.id FROM devices d WHERE d.account_id = $1 AND d.id = $2

-- name: campaign_event_owned
SELECT e.id FROM events e WHERE e.account_id = $1 AND e.id = $2

-- name: campaign_create
-- R62 / R97: always a draft.
WITH ins AS (
    INSERT INTO campaigns (account_id, device_id, name, message_template, media_url, media_type, status,
                           scheduled_at, settings, event_id, source)
    VALUES ($1, $2, $3, $4, $5, $6, 'draft', $7, $8::text::jsonb, $9, $10)
    RETURNING id, account_id, device_id, event_id, source, name, message_template, media_url, media_type, status,
              scheduled_at, started_at, completed_at, total_recipients, sent_count, failed_count, settings,
              created_at, updated_at
)
SELECT ins.id, ins.account_id, ins.device_id, ins.event_id, ins.source, ins.name, ins.message_template,
       ins.media_url, ins.media_type, ins.status, ins.scheduled_at, ins.started_at, ins.completed_at,
       ins.total_recipients, ins.sent_count, ins.failed_count, ins.settings, ins.created_at, ins.updated_at,
       d.name AS device_name
FROM ins
LEFT JOIN devices d ON d.id = ins.device_id

-- name: campaign_update
-- R64: the editable columns only (never the counters, which the worker owns).
UPDATE campaigns c
SET name = $3, device_id = $4, message_template = $5, media_url = $6, media_type = $7, scheduled_at = $8,
    status = $9, settings = $10::text::jsonb, updated_at = now()
WHERE c.account_id = $1 AND c.id = $2

-- name: campaign_set_status
-- Start / pause / complete transitions (checked by the caller under campaign_lock_row). A start keeps the
-- first started_at; completed stamps completed_at; a re-start clears it.
UPDATE campaigns c
SET status = $3::text,
    started_at = CASE WHEN $3::text = 'running' THEN COALESCE(c.started_at, now()) ELSE c.started_at END,
    completed_at = CASE WHEN $3::text = 'completed' THEN now()
                        WHEN $3::text = 'running' THEN NULL ELSE c.completed_at END,
    updated_at = now()
WHERE c.account_id = $1 AND c.id = $2
RETURNING c.id, c.status

-- name: campaign_delete
-- R65: recipients and attachments go with it (ON DELETE CASCADE).
DELETE FROM campaigns c WHERE c.account_id = $1 AND c.id = $2 RETURNING c.id

-- name: campaigns_delete_many
-- R66
DELETE FROM campaigns c WHERE c.account_id = $1 AND c.id = ANY($2::uuid[]) RETURNING c.id

-- name: campaign_attachments_delete
DELETE FROM campaign_attachments a
USING campaigns c
WHERE c.id = a.campaign_id AND c.account_id = $1 AND a.campaign_id = $2

-- name: campaign_attachments_insert
-- R62 / R73 / R97: one statement for the list, in input order.
INSERT INTO campaign_attachments (campaign_id, media_url, media_type, caption, file_name, file_size, position)
SELECT $2, u.media_url, u.media_type, u.caption, u.file_name, u.file_size, u.position
FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::int[])
     WITH ORDINALITY AS u(media_url, media_type, caption, file_name, file_size, position, ord)
WHERE EXISTS (SELECT 1 FROM campaigns c WHERE c.id = $2 AND c.account_id = $1)
ORDER BY u.ord
RETURNING id, campaign_id, media_url, media_type, caption, file_name, file_size, position, created_at

-- name: campaign_recipients_insert
-- R67 / R97: one chunk (≤ 5000) of recipients; a JID already in the campaign is skipped (the unique key
-- campaign_recipients_campaign_id_jid_key), so is a contact_id that is not the account's. seq (the send
-- order) follows the input order. Returns how many rows were added.
WITH input AS (
    SELECT u.contact_id, u.jid, u.name, u.phone, u.metadata, u.ord
    FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[])
         WITH ORDINALITY AS u(contact_id, jid, name, phone, metadata, ord)
), ins AS (
    INSERT INTO campaign_recipients (campaign_id, contact_id, jid, name, phone, metadata)
    SELECT $2, ct.id, i.jid, i.name, i.phone, COALESCE(i.metadata::jsonb, '{}'::jsonb)
    FROM input i
    LEFT JOIN contacts ct ON ct.id = i.contact_id AND ct.account_id = $1
    WHERE EXISTS (SELECT 1 FROM campaigns c WHERE c.id = $2 AND c.account_id = $1)
    ORDER BY i.ord
    ON CONFLICT (campaign_id, jid) DO NOTHING
    RETURNING 1
)
SELECT count(*) AS added FROM ins

-- name: campaign_contacts_get_or_create
-- R67 save_as_contacts: contacts of the account by JID, created (jid, phone, name) when missing.
-- Input JIDs must not repeat. Returns (id, jid) for every input JID.
WITH input AS (
    SELECT u.jid, u.phone, u.name FROM unnest($2::text[], $3::text[], $4::text[]) AS u(jid, phone, name)
), ins AS (
    INSERT INTO contacts (account_id, jid, phone, name)
    SELECT $1, i.jid, i.phone, NULLIF(i.name, '') FROM input i
    ON CONFLICT (account_id, jid) DO NOTHING
    RETURNING id, jid
)
SELECT ins.id, ins.jid FROM ins
UNION ALL
SELECT c.id, c.jid FROM contacts c JOIN input i ON i.jid = c.jid WHERE c.account_id = $1

-- name: campaign_recount
UPDATE campaigns c
SET total_recipients = (SELECT count(*) FROM campaign_recipients r WHERE r.campaign_id = c.id), updated_at = now()
WHERE c.account_id = $1 AND c.id = $2
RETURNING c.total_recipients

-- name: campaign_recipients_page
-- R68: $3 limit, $4 offset. No row = not the caller's campaign; a campaign without recipients gives one
-- row with a NULL id.
SELECT t.total, x.id, x.campaign_id, x.contact_id, x.jid, x.name, x.phone, x.status, x.sent_at, x.error_message,
       x.wait_time_ms, x.metadata
FROM campaigns c
CROSS JOIN LATERAL (SELECT count(*) AS total FROM campaign_recipients r WHERE r.campaign_id = c.id) t
LEFT JOIN LATERAL (
    SELECT r.id, r.campaign_id, r.contact_id, r.jid, r.name, r.phone, r.status, r.sent_at, r.error_message,
           r.wait_time_ms, r.metadata, r.seq
    FROM campaign_recipients r
    WHERE r.campaign_id = c.id
    ORDER BY r.sent_at ASC NULLS LAST, r.seq
    LIMIT $3 OFFSET $4
) x ON true
WHERE c.account_id = $1 AND c.id = $2
ORDER BY x.sent_at ASC NULLS LAST, x.seq

-- name: campaign_recipient_status
SELECT r.status
FROM campaign_recipients r
JOIN campaigns c ON c.id = r.campaign_id
WHERE c.account_id = $1 AND r.campaign_id = $2 AND r.id = $3

-- name: campaign_recipient_delete
-- R69: only a recipient still pending (never one the worker has claimed or processed).
DELETE FROM campaign_recipients r
USING campaigns c
WHERE c.id = r.campaign_id AND c.account_id = $1 AND r.campaign_id = $2 AND r.id = $3 AND r.status = 'pending'
RETURNING r.id

-- name: campaign_duplicate
-- R72: a draft copy; name gets " (copia)"; scheduled_at is not copied.
INSERT INTO campaigns (account_id, device_id, name, message_template, media_url, media_type, status, settings,
                       event_id, source)
SELECT c.account_id, c.device_id, left(c.name || ' (copia)', 255), COALESCE(NULLIF($3::text, ''), c.message_template),
       c.media_url, c.media_type, 'draft', c.settings, c.event_id, c.source
FROM campaigns c
WHERE c.account_id = $1 AND c.id = $2
RETURNING id

-- name: campaign_copy_recipients
-- R72: every recipient again as pending, in the original send order ($3 = the copy).
INSERT INTO campaign_recipients (campaign_id, contact_id, jid, name, phone, metadata)
SELECT $3, r.contact_id, r.jid, r.name, r.phone, r.metadata
FROM campaign_recipients r
JOIN campaigns c ON c.id = r.campaign_id
WHERE c.account_id = $1 AND r.campaign_id = $2
ORDER BY r.seq

-- name: campaign_copy_attachments
INSERT INTO campaign_attachments (campaign_id, media_url, media_type, caption, file_name, file_size, position)
SELECT $3, a.media_url, a.media_type, a.caption, a.file_name, a.file_size, a.position
FROM campaign_attachments a
JOIN campaigns c ON c.id = a.campaign_id
WHERE c.account_id = $1 AND a.campaign_id = $2
ORDER BY a.position, a.created_at, a.id

-- name: campaign_event_participants
-- R97: participants of the caller's event with a phone, filtered by status ('' = any) and tags (any-of;
-- NULL = no filter), in creation order. $5 = cap.
SELECT p.id, p.contact_id, p.name, p.last_name, p.phone
FROM event_participants p
JOIN events e ON e.id = p.event_id
WHERE e.account_id = $1 AND e.id = $2 AND p.phone IS NOT NULL AND p.phone <> ''
  AND ($3::text = '' OR p.status = $3::text)
  AND ($4::uuid[] IS NULL OR EXISTS (
      SELECT 1 FROM participant_tags pt WHERE pt.participant_id = p.id AND pt.tag_id = ANY($4::uuid[])))
ORDER BY p.created_at, p.id
LIMIT $5

-- ---------------------------------------------------------------------------------------------------------
-- Worker (clarin/campaigns/worker.py)
-- ---------------------------------------------------------------------------------------------------------

-- name: campaigns_start_due
-- Scheduled campaigns whose time has come (or that have none) become running; all tenants. The same statement
-- writes each change's `campaign_status` webhook outbox rows (one event id per campaign, one row per matching
-- enabled subscription of its account; none for an account without one), so they commit with the change
-- (docs/WEBHOOKS.md, "Durability"); `data` is the WebSocket event's {campaign_id, status}.
WITH changed AS (
    UPDATE campaigns c
    SET status = 'running', started_at = COALESCE(c.started_at, now()), completed_at = NULL, updated_at = now()
    WHERE c.id IN (
        SELECT s.id FROM campaigns s
        WHERE s.status = 'scheduled' AND (s.scheduled_at IS NULL OR s.scheduled_at <= now())
        ORDER BY s.created_at
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING c.id, c.account_id, c.status, gen_random_uuid() AS event_id
), hooks AS (
    INSERT INTO webhook_deliveries (account_id, webhook_id, event_id, event, data)
    SELECT ch.account_id, w.id, ch.event_id, 'campaign_status',
           json_build_object('campaign_id', ch.id, 'status', ch.status)::text
    FROM changed ch
    CROSS JOIN LATERAL webhook_subscribers(ch.account_id, 'campaign_status') AS w
    ORDER BY ch.id, w.id
    RETURNING 1
)
SELECT ch.id, ch.account_id, ch.status, (SELECT count(*) FROM hooks)::int AS outbox_rows FROM changed ch

-- name: campaigns_pause_logged_out
-- Running and scheduled campaigns whose device was unlinked from the phone cannot send until it is paired again:
-- they pause (issue 20: a logged-out number is a danger signal; resuming is a person's POST /start) with the reason
-- recorded (pause_reason, shown in GET /api/devices/:id, docs/NUMBER_HEALTH.md). Their `campaign_status` webhook
-- outbox rows are written by the same statement, as in campaigns_start_due.
WITH changed AS (
    UPDATE campaigns c
    SET status = 'paused', pause_reason = 'device logged out: pair it again, then start the campaign',
        updated_at = now()
    FROM devices d
    WHERE d.id = c.device_id AND d.account_id = c.account_id AND c.status IN ('running', 'scheduled')
      AND d.status = 'logged_out'
    RETURNING c.id, c.account_id, c.status, gen_random_uuid() AS event_id
), hooks AS (
    INSERT INTO webhook_deliveries (account_id, webhook_id, event_id, event, data)
    SELECT ch.account_id, w.id, ch.event_id, 'campaign_status',
           json_build_object('campaign_id', ch.id, 'status', ch.status)::text
    FROM changed ch
    CROSS JOIN LATERAL webhook_subscribers(ch.account_id, 'campaign_status') AS w
    ORDER BY ch.id, w.id
    RETURNING 1
)
SELECT ch.id, ch.account_id, ch.status, (SELECT count(*) FROM hooks)::int AS outbox_rows FROM changed ch

-- name: campaigns_running_devices
-- Devices with at least one running campaign (all tenants).
SELECT DISTINCT c.device_id FROM campaigns c WHERE c.status = 'running'

-- name: campaigns_running_on_device
-- The device loop's work list, first started first served.
SELECT c.id, c.account_id, c.settings, a.timezone
FROM campaigns c
JOIN accounts a ON a.id = c.account_id
WHERE c.device_id = $1 AND c.status = 'running'
ORDER BY c.started_at NULLS LAST, c.created_at, c.id
LIMIT $2

-- name: campaign_worker_state
-- Re-read before each message: status and the settings the pacing needs.
SELECT c.status, c.settings, a.timezone
FROM campaigns c
JOIN accounts a ON a.id = c.account_id
WHERE c.id = $1

-- name: campaign_worker_attachments
SELECT a.media_url, a.media_type, a.caption
FROM campaign_attachments a
WHERE a.campaign_id = $1
ORDER BY a.position, a.created_at, a.id

-- name: campaign_processed_since
-- Recipients processed (sent or failed) since $2: the daily limit's count.
SELECT count(*) AS n
FROM campaign_recipients r
WHERE r.campaign_id = $1 AND r.status IN ('sent', 'failed') AND r.updated_at >= $2

-- name: campaign_claim_next
-- Claim the next pending recipient (send order = seq) of a RUNNING campaign: status 'sending' before its
-- message goes out. SKIP LOCKED: two claimers never get the same row. Returns what composing needs
-- (settings: randomize_message turns spintax on, clarin.campaigns.compose.spin_seed).
WITH next AS (
    SELECT r.id
    FROM campaign_recipients r
    WHERE r.campaign_id = $1 AND r.status = 'pending'
      AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = $1 AND c.status = 'running')
    ORDER BY r.seq
    LIMIT 1
    FOR UPDATE OF r SKIP LOCKED
), claimed AS (
    UPDATE campaign_recipients r
    SET status = 'sending', error_message = NULL, updated_at = now()
    FROM next
    WHERE r.id = next.id AND r.status = 'pending'
    RETURNING r.id, r.campaign_id, r.contact_id, r.jid, r.name, r.phone, r.metadata, r.updated_at
)
SELECT cl.id, cl.contact_id, cl.jid, cl.name, cl.phone, cl.metadata, cl.updated_at AS claimed_at,
       c.account_id, c.device_id, c.message_template, c.media_url, c.media_type, c.settings,
       ct.name AS contact_name, ct.last_name AS contact_last_name, ct.short_name AS contact_short_name,
       ct.custom_name AS contact_custom_name
FROM claimed cl
JOIN campaigns c ON c.id = cl.campaign_id
LEFT JOIN contacts ct ON ct.id = cl.contact_id

-- name: campaign_unclaim
-- The send provably did not happen (device unavailable before anything went out): back to pending.
UPDATE campaign_recipients r
SET status = 'pending', updated_at = now()
WHERE r.campaign_id = $1 AND r.id = $2 AND r.status = 'sending'

-- name: campaign_recipient_finish
-- Mark a claimed recipient sent/failed and move the campaign's counters in the same statement.
-- No row = the recipient was no longer 'sending' (reconciled by another process, or deleted).
WITH done AS (
    UPDATE campaign_recipients r
    SET status = $3::text,
        sent_at = CASE WHEN $3::text = 'sent' THEN now() ELSE NULL END,
        error_message = $4::text,
        wait_time_ms = $5::int,
        updated_at = now()
    WHERE r.campaign_id = $1 AND r.id = $2 AND r.status = 'sending'
    RETURNING r.status
)
UPDATE campaigns c
SET sent_count = c.sent_count + (SELECT count(*) FROM done WHERE done.status = 'sent'),
    failed_count = c.failed_count + (SELECT count(*) FROM done WHERE done.status = 'failed'),
    updated_at = now()
WHERE c.id = $1 AND EXISTS (SELECT 1 FROM done)
RETURNING c.id, c.account_id, c.status, c.sent_count, c.failed_count, c.total_recipients

-- name: campaign_lock_for_completion
SELECT c.id, c.status FROM campaigns c WHERE c.id = $1 FOR UPDATE

-- name: campaign_has_unfinished
-- Run after campaign_lock_for_completion, in the same transaction (a fresh snapshot sees every add).
SELECT EXISTS (
    SELECT 1 FROM campaign_recipients r WHERE r.campaign_id = $1 AND r.status IN ('pending', 'sending')
) AS unfinished

-- name: campaign_has_pending
SELECT EXISTS (SELECT 1 FROM campaign_recipients r WHERE r.campaign_id = $1 AND r.status = 'pending') AS pending

-- name: campaign_mark_completed
UPDATE campaigns c
SET status = 'completed', completed_at = now(), updated_at = now()
WHERE c.id = $1 AND c.status = 'running'
RETURNING c.id, c.account_id, c.status

-- name: campaign_sending_recipients
-- Reconcile (run only while holding the campaign's lock, so no live process is sending them): recipients
-- left 'sending' by a dead worker, with the outgoing messages the device stored for their JID since the
-- claim (bodies in order, and the latest time).
SELECT r.id, r.contact_id, r.jid, r.name, r.phone, r.metadata, r.updated_at AS claimed_at,
       c.account_id, c.device_id, c.message_template, c.media_url, c.media_type, c.settings,
       ct.name AS contact_name, ct.last_name AS contact_last_name, ct.short_name AS contact_short_name,
       ct.custom_name AS contact_custom_name,
       m.bodies, m.last_at
FROM campaign_recipients r
JOIN campaigns c ON c.id = r.campaign_id
LEFT JOIN contacts ct ON ct.id = r.contact_id
CROSS JOIN LATERAL (
    SELECT array_agg(COALESCE(msg.body, '') ORDER BY msg.created_at) AS bodies, max(msg.created_at) AS last_at
    FROM chats ch
    JOIN messages msg ON msg.chat_id = ch.id
    WHERE ch.account_id = c.account_id AND ch.jid IN (r.jid, regexp_replace(r.jid, ':[0-9]+@', '@'))
      AND msg.is_from_me AND msg.device_id = c.device_id AND msg.created_at >= r.updated_at
) m
WHERE r.campaign_id = $1 AND r.status = 'sending'

-- name: campaign_reconcile_finish
-- Settle reconciled recipients in one statement, counters included ($2 ids, $3 statuses, $4 errors,
-- $5 sent_at).
WITH input AS (
    SELECT u.id, u.status, u.error_message, u.sent_at
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[]) AS u(id, status, error_message, sent_at)
), done AS (
    UPDATE campaign_recipients r
    SET status = i.status, error_message = i.error_message, sent_at = i.sent_at, updated_at = now()
    FROM input i
    WHERE r.id = i.id AND r.campaign_id = $1 AND r.status = 'sending'
    RETURNING r.status
)
UPDATE campaigns c
SET sent_count = c.sent_count + (SELECT count(*) FROM done WHERE done.status = 'sent'),
    failed_count = c.failed_count + (SELECT count(*) FROM done WHERE done.status = 'failed'),
    updated_at = now()
WHERE c.id = $1 AND EXISTS (SELECT 1 FROM done)
RETURNING c.id, c.account_id, c.status, c.sent_count, c.failed_count, c.total_recipients

