-- Inbound WhatsApp ingestion (integrations.md B.7–B.10, schema.md §5.1, §5.3, §5.4): set-based writes of one
-- batch of events of one device, all run inside ONE transaction by clarin.messaging.ingest_store.
-- $1 = account_id everywhere; $2 = device_id where a device is written. Inputs are parallel arrays, unnested;
-- callers remove duplicate conflict keys first (ON CONFLICT DO UPDATE may not touch a row twice) and sort
-- them by key, so concurrent batches of two devices lock rows in the same order.

-- name: ingest_existing_messages
-- Which (chat JID, stanza id) pairs are already stored: duplicate media is not downloaded again.
SELECT c.jid, m.message_id
FROM unnest($2::text[], $3::text[]) AS i(jid, message_id)
JOIN chats c ON c.account_id = $1 AND c.jid = i.jid
JOIN messages m ON m.account_id = $1 AND m.chat_id = c.id AND m.message_id = i.message_id

-- name: ingest_ensure_chats
-- B.7 step 5, first half: the chats of the batch that do not exist yet are created (claimed by this device,
-- with the sender's push name as chat name); returns the id of every chat asked for. Existing chats come from the
-- statement's snapshot; one created meanwhile by a concurrent transaction can be missing from the result
-- (the caller asks again). Nothing is written when the device is gone or not in the account.
WITH input AS (
    SELECT i.jid, i.name
    FROM unnest($3::text[], $4::text[]) AS i(jid, name)
    WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = $2 AND d.account_id = $1)
), created AS (
    INSERT INTO chats AS c (account_id, device_id, jid, name)
    SELECT $1::uuid, $2::uuid, i.jid, i.name
    FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM chats x WHERE x.account_id = $1 AND x.jid = i.jid)
    ORDER BY i.jid
    ON CONFLICT (account_id, jid) DO NOTHING
    RETURNING c.id, c.jid
)
SELECT id, jid, true AS created FROM created
UNION ALL
SELECT c.id, c.jid, false AS created FROM chats c JOIN input i ON i.jid = c.jid WHERE c.account_id = $1

-- name: ingest_insert_messages
-- B.7 step 7. Dedup on (account_id, chat_id, message_id): a stanza already stored returns no row, and only
-- returned rows cause side effects (counters, contacts, leads, events). NULL array entries = NULL columns.
INSERT INTO messages AS m (
    account_id, device_id, chat_id, message_id, from_jid, from_name, body, message_type, media_url,
    media_mimetype, media_filename, media_size, is_from_me, is_read, status, "timestamp", quoted_message_id,
    quoted_body, quoted_sender, poll_question, poll_max_selections
)
SELECT $1::uuid, $2::uuid, i.chat_id, i.message_id, i.from_jid, i.from_name, i.body, i.message_type, i.media_url,
       i.media_mimetype, i.media_filename, i.media_size, i.is_from_me, false, 'received', i.ts, i.quoted_message_id,
       i.quoted_body, i.quoted_sender, i.poll_question, i.poll_max_selections
FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
            $11::text[], $12::bigint[], $13::bool[], $14::timestamptz[], $15::text[], $16::text[], $17::text[],
            $18::text[], $19::int[])
     AS i(chat_id, message_id, from_jid, from_name, body, message_type, media_url, media_mimetype, media_filename,
          media_size, is_from_me, ts, quoted_message_id, quoted_body, quoted_sender, poll_question,
          poll_max_selections)
ORDER BY i.chat_id, i.message_id
ON CONFLICT (account_id, chat_id, message_id) DO NOTHING
RETURNING m.id, m.chat_id, m.message_id, m.created_at

-- name: ingest_update_chats
-- B.7 steps 5 (second half) and 8 in one UPDATE per chat: claimed by this device, renamed to a non-empty
-- push name, and — for chats with new messages ($5 ts not NULL) — the counters of schema §5.3, fixed:
-- last_message_at never moves backwards (GREATEST ignores NULL), the preview changes only when the batch's
-- newest message is at least as new as the stored one, and unread_count grows by the number of new incoming
-- messages. Chats with nothing to change are not rewritten. Returns the count after the increment.
UPDATE chats AS c
SET device_id = $2::uuid,
    name = COALESCE(NULLIF(i.name, ''), c.name),
    last_message = CASE WHEN i.ts IS NOT NULL AND (c.last_message_at IS NULL OR i.ts >= c.last_message_at)
                        THEN i.preview ELSE c.last_message END,
    last_message_at = GREATEST(c.last_message_at, i.ts),
    unread_count = c.unread_count + i.unread,
    updated_at = now()
FROM unnest($3::uuid[], $4::text[], $5::timestamptz[], $6::text[], $7::int[]) AS i(chat_id, name, ts, preview, unread)
WHERE c.id = i.chat_id AND c.account_id = $1
  AND (i.ts IS NOT NULL OR c.device_id IS DISTINCT FROM $2::uuid
       OR (NULLIF(i.name, '') IS NOT NULL AND c.name IS DISTINCT FROM i.name))
RETURNING c.id, c.unread_count

-- name: ingest_upsert_contacts_leads
-- B.7 steps 9 and 11 in one statement. Contacts upsert on (account_id, jid): name / push_name / phone take the
-- new value only when it is non-empty (COALESCE(NULLIF(new, ''), old)); device_id is kept; unchanged rows are
-- not rewritten. Then a lead for every new incoming sender ($6 = want lead) without one: source 'whatsapp',
-- status 'new', linked to its contact and placed in the account's default pipeline, first stage (the
-- original left pipeline/stage empty, B.17 quirk 11). One row: how many contacts were written (0: the page cache's
-- contacts scope survives the batch's new_message events) and the ids of the leads created.
WITH input AS (
    SELECT t.jid, t.phone, t.name, t.want_lead
    FROM unnest($3::text[], $4::text[], $5::text[], $6::bool[]) AS t(jid, phone, name, want_lead)
), upserted AS (
    INSERT INTO contacts AS k (account_id, device_id, jid, phone, name, push_name, is_group)
    SELECT $1::uuid, $2::uuid, i.jid, NULLIF(i.phone, ''), NULLIF(i.name, ''), NULLIF(i.name, ''), false
    FROM input i
    ORDER BY i.jid
    ON CONFLICT (account_id, jid) DO UPDATE
    SET name = COALESCE(EXCLUDED.name, k.name),
        push_name = COALESCE(EXCLUDED.push_name, k.push_name),
        phone = COALESCE(EXCLUDED.phone, k.phone),
        updated_at = now()
    WHERE (EXCLUDED.name IS NOT NULL AND EXCLUDED.name IS DISTINCT FROM k.name)
       OR (EXCLUDED.push_name IS NOT NULL AND EXCLUDED.push_name IS DISTINCT FROM k.push_name)
       OR (EXCLUDED.phone IS NOT NULL AND EXCLUDED.phone IS DISTINCT FROM k.phone)
    RETURNING k.id, k.jid
), stage AS (
    SELECT p.id AS pipeline_id,
           (SELECT ps.id FROM pipeline_stages ps WHERE ps.pipeline_id = p.id
            ORDER BY ps.position, ps.created_at, ps.id LIMIT 1) AS stage_id
    FROM pipelines p
    WHERE p.account_id = $1 AND p.is_default
    ORDER BY p.created_at
    LIMIT 1
), created AS (
    INSERT INTO leads (account_id, contact_id, jid, name, phone, status, source, pipeline_id, stage_id)
    SELECT $1::uuid,
           COALESCE(u.id, (SELECT k.id FROM contacts k WHERE k.account_id = $1 AND k.jid = i.jid)),
           i.jid, i.name, NULLIF(i.phone, ''), 'new', 'whatsapp', s.pipeline_id, s.stage_id
    FROM input i
    LEFT JOIN upserted u ON u.jid = i.jid
    LEFT JOIN stage s ON true
    WHERE i.want_lead
      AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.account_id = $1 AND l.jid = i.jid)
    ORDER BY i.jid
    ON CONFLICT (account_id, jid) DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM upserted)::int AS contacts_written,
       ARRAY(SELECT c.id FROM created c) AS lead_ids

-- name: ingest_insert_poll_options
-- B.9: one row per option of each newly stored poll, in the order sent (position is 0-based).
INSERT INTO poll_options (message_id, name, position)
SELECT i.message_id, i.name, i.position
FROM unnest($2::uuid[], $3::text[], $4::int[]) AS i(message_id, name, position)
WHERE i.message_id IN (SELECT m.id FROM messages m WHERE m.account_id = $1 AND m.id = ANY($2::uuid[]))
ORDER BY i.message_id, i.position
RETURNING id, message_id, name, vote_count, position

-- name: ingest_upsert_reactions
-- B.8: upsert on (chat_id, target_message_id, sender_jid). A reaction older than the stored one, or the
-- same reaction delivered again, changes nothing and returns no row (so no event).
INSERT INTO message_reactions AS r (account_id, chat_id, target_message_id, sender_jid, sender_name, emoji,
                                    is_from_me, "timestamp")
SELECT $1::uuid, i.chat_id, i.target, i.sender, i.sender_name, i.emoji, i.is_from_me, i.ts
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::timestamptz[])
     AS i(chat_id, target, sender, sender_name, emoji, is_from_me, ts)
WHERE EXISTS (SELECT 1 FROM chats c WHERE c.id = i.chat_id AND c.account_id = $1)
ORDER BY i.chat_id, i.target, i.sender
ON CONFLICT (chat_id, target_message_id, sender_jid) DO UPDATE
SET emoji = EXCLUDED.emoji,
    sender_name = EXCLUDED.sender_name,
    "timestamp" = EXCLUDED."timestamp",
    updated_at = now()
WHERE r."timestamp" <= EXCLUDED."timestamp"
  AND (r.emoji <> EXCLUDED.emoji OR r."timestamp" < EXCLUDED."timestamp")
RETURNING r.chat_id, r.target_message_id, r.sender_jid

-- name: ingest_delete_reactions
-- B.8: an empty emoji removes the sender's reaction (unless a newer one is stored).
DELETE FROM message_reactions AS r
USING unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[]) AS i(chat_id, target, sender, ts)
WHERE r.account_id = $1 AND r.chat_id = i.chat_id AND r.target_message_id = i.target
  AND r.sender_jid = i.sender AND r."timestamp" <= i.ts
RETURNING r.chat_id, r.target_message_id, r.sender_jid

-- name: ingest_upsert_poll_votes
-- B.9: the poll is found by (chat, stanza id); the selected option hashes ($5: comma-separated hex SHA-256 of
-- the option names) are mapped to names by hashing the stored options; upsert on (message_id, voter_jid).
-- A vote older than the stored one, or the same vote again, returns no row (so no event).
WITH input AS (
    SELECT i.chat_id, i.poll_id, i.voter, i.hashes, i.ts
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS i(chat_id, poll_id, voter, hashes, ts)
), polls AS (
    SELECT m.id, m.chat_id, m.message_id AS stanza_id, i.voter, i.ts,
           ARRAY(SELECT o.name FROM poll_options o
                 WHERE o.message_id = m.id
                   AND encode(sha256(convert_to(o.name, 'UTF8')), 'hex') = ANY(string_to_array(i.hashes, ','))
                 ORDER BY o.position, o.id) AS names
    FROM input i
    JOIN messages m ON m.account_id = $1 AND m.chat_id = i.chat_id AND m.message_id = i.poll_id
                   AND m.message_type = 'poll'
), saved AS (
    INSERT INTO poll_votes AS v (message_id, voter_jid, selected_names, "timestamp")
    SELECT p.id, p.voter, p.names, p.ts
    FROM polls p
    ORDER BY p.id, p.voter
    ON CONFLICT (message_id, voter_jid) DO UPDATE
    SET selected_names = EXCLUDED.selected_names,
        "timestamp" = EXCLUDED."timestamp",
        updated_at = now()
    WHERE v."timestamp" <= EXCLUDED."timestamp"
      AND (v.selected_names IS DISTINCT FROM EXCLUDED.selected_names OR v."timestamp" < EXCLUDED."timestamp")
    RETURNING v.message_id, v.voter_jid
)
SELECT s.message_id, s.voter_jid, p.chat_id, p.stanza_id
FROM saved s
JOIN polls p ON p.id = s.message_id AND p.voter = s.voter_jid

-- name: ingest_recount_poll_options
-- B.9 recount in ONE statement: every option of the given polls gets the number of votes naming it.
UPDATE poll_options AS o
SET vote_count = (SELECT count(*) FROM poll_votes v
                  WHERE v.message_id = o.message_id AND o.name = ANY(v.selected_names))::int,
    updated_at = now()
WHERE o.message_id = ANY($2::uuid[])
  AND o.message_id IN (SELECT m.id FROM messages m WHERE m.account_id = $1 AND m.id = ANY($2::uuid[]))
RETURNING o.id, o.message_id, o.name, o.vote_count, o.position

-- name: ingest_poll_votes
-- The votes of the given polls (poll_update payload), oldest first. $3 limit.
SELECT v.id, v.message_id, v.voter_jid, v.selected_names, v."timestamp"
FROM poll_votes v
JOIN messages m ON m.id = v.message_id
WHERE m.account_id = $1 AND v.message_id = ANY($2::uuid[])
ORDER BY v.message_id, v."timestamp", v.id
LIMIT $3

-- name: ingest_apply_edits
-- Edits and revokes change the target message in place (the original stored them as new blank rows, B.17
-- quirk 1). Only the author's own messages change: is_from_me must match. An edit replaces the body of a
-- text / image / video message (the caption); a revoke blanks body and media and sets message_type
-- 'revoked'. The chat preview follows when the message is the chat's newest. Unchanged rows (the same edit
-- delivered twice, an already revoked message) return nothing. $6 kind: 'edit' | 'revoke'.
WITH input AS (
    SELECT i.chat_jid, i.target, i.is_from_me, i.kind, i.body
    FROM unnest($2::text[], $3::text[], $4::bool[], $5::text[], $6::text[]) AS i(chat_jid, target, is_from_me, kind, body)
), changed AS (
    UPDATE messages AS m
    SET body = CASE WHEN i.kind = 'revoke' THEN '' ELSE i.body END,
        message_type = CASE WHEN i.kind = 'revoke' THEN 'revoked' ELSE m.message_type END,
        media_url = CASE WHEN i.kind = 'revoke' THEN NULL ELSE m.media_url END
    FROM input i
    JOIN chats c ON c.account_id = $1 AND c.jid = i.chat_jid
    WHERE m.account_id = $1 AND m.chat_id = c.id AND m.message_id = i.target
      AND m.is_from_me = i.is_from_me
      AND m.message_type <> 'revoked'
      AND (i.kind = 'revoke'
           OR (m.message_type IN ('text', 'image', 'video') AND m.body IS DISTINCT FROM i.body))
    RETURNING m.id, m.chat_id, m.message_id, m.body, m.message_type, m."timestamp", i.chat_jid
), previews AS (
    UPDATE chats AS c
    SET last_message = x.body, updated_at = now()
    FROM changed x
    WHERE c.id = x.chat_id AND c.account_id = $1 AND c.last_message_at = x."timestamp"
    RETURNING c.id
)
SELECT x.id, x.chat_id, x.chat_jid, x.message_id, x.body, x.message_type,
       (SELECT count(*) FROM previews) AS previews
FROM changed x

-- name: ingest_apply_receipts
-- B.10, fixed: receipts now persist. Own messages of the chat move to 'delivered' / 'read', never backwards
-- (read is final; delivered does not overwrite read). Input rows are unique per (chat, stanza id).
UPDATE messages AS m
SET status = i.status
FROM unnest($2::text[], $3::text[], $4::text[]) AS i(chat_jid, message_id, status)
JOIN chats c ON c.account_id = $1 AND c.jid = i.chat_jid
WHERE m.account_id = $1 AND m.chat_id = c.id AND m.message_id = i.message_id
  AND m.is_from_me
  AND m.status <> 'read' AND m.status <> i.status
RETURNING m.id

-- name: ingest_contacts_without_avatar
-- B.7 step 10: which of the batch's incoming senders ($2 = contact JIDs) still have no avatar. Run after the
-- batch committed, outside its transaction.
SELECT k.jid
FROM contacts k
WHERE k.account_id = $1 AND k.jid = ANY($2::text[]) AND k.avatar_url IS NULL

-- name: ingest_set_avatar
-- B.16.5: the fetched profile picture's proxy URL ($3) on the contact ($2 = JID); only when it still has none
-- (a picture set meanwhile, by hand or by another process, is kept). The contact's trigger (0018) copies the avatar
-- onto its chat: the chat's row is locked first (the InitPlan runs before the contact row is locked), in the order
-- the ingest batches take them (chats, then contacts), or a batch of the same sender running meanwhile deadlocks
-- with this update.
WITH chat AS (
    SELECT ch.id FROM chats ch WHERE ch.account_id = $1 AND ch.jid = $2 ORDER BY ch.id FOR UPDATE
)
UPDATE contacts
SET avatar_url = $3, updated_at = now()
WHERE account_id = $1 AND jid = $2 AND avatar_url IS NULL AND (SELECT count(*) FROM chat) >= 0
