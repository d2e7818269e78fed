-- Outbound sends (api.md §4.4 R27–R30, integrations.md B.12/B.13), the message page (R24) and its
-- reactions / polls. Every statement is scoped to $1 = account_id (poll_options / poll_votes, which have no
-- account_id, join their message). Message columns are listed in the order of clarin.wire.messages.Message;
-- poll_question / poll_max_selections are read for polls only (NULL otherwise, so they are omitted).

-- name: outbound_device
-- The sending device, only when it belongs to the account (unknown or foreign → 404).
SELECT d.id, d.jid
FROM devices d
WHERE d.id = $2 AND d.account_id = $1

-- name: outbound_chat_upsert
-- R21 / reactions: the chat of (account, JID), claimed by the device; name and preview untouched.
INSERT INTO chats AS c (account_id, device_id, jid, name)
VALUES ($1, $2, $3, '')
ON CONFLICT (account_id, jid) DO UPDATE
SET device_id = EXCLUDED.device_id, updated_at = now()
RETURNING c.id, c.account_id, c.device_id, c.contact_id, c.jid, NULLIF(c.name, '') AS name, c.last_message,
          c.last_message_at, c.unread_count, c.is_archived, c.is_pinned, c.created_at, c.updated_at

-- name: outbound_store_pending
-- A send is recorded BEFORE it is handed to the driver (issue 12): the chat of (account, JID) upserted and claimed
-- by the device (preview untouched: it follows the message once WhatsApp took it), the message inserted with
-- status 'pending', a placeholder stanza id ('pending:<row id>') and the current time. With an Idempotency-Key
-- ($17 key, $18 claim) the key is linked to the row in the same statement, and only while the caller's claim
-- still holds: no row comes back otherwise (someone else re-claimed the key) and nothing may be sent.
-- $3 = the new row's id (chosen by the caller). `chat_created` tells whether this statement made the chat.
WITH link AS (
    UPDATE idempotency_keys k SET message_id = $3
    WHERE k.account_id = $1 AND k.key = $17::varchar AND k.claim = $18::uuid
      AND k.message_id IS NULL AND k.status_code IS NULL
    RETURNING k.key
), allowed AS (
    SELECT 1 AS ok WHERE $17::varchar IS NULL OR EXISTS (SELECT 1 FROM link)
), chat AS (
    INSERT INTO chats AS c (account_id, device_id, jid, name)
    SELECT $1, $2, $4, '' FROM allowed
    ON CONFLICT (account_id, jid) DO UPDATE
    SET device_id = EXCLUDED.device_id, updated_at = now()
    RETURNING c.id, (c.xmax = 0) AS created
), stored AS (
    INSERT INTO messages AS m (
        id, account_id, device_id, chat_id, message_id, from_jid, from_name, body, message_type, media_url,
        media_mimetype, media_filename, media_size, is_from_me, is_read, status, "timestamp", quoted_message_id,
        quoted_body, quoted_sender, poll_question, poll_max_selections
    )
    SELECT $3, $1, $2, chat.id, 'pending:' || $3::text, $5::varchar, 'Me', $6::text, $7::varchar, $8::text,
           $9::varchar, $10::varchar, $11::bigint, true, false, 'pending', now(), $12::varchar, $13::text,
           $14::varchar, $15::text, $16::integer
    FROM chat
    RETURNING m.id, m.account_id, m.device_id, m.chat_id, m.message_id, m.from_jid, m.from_name, m.body,
              m.message_type, m.media_url, m.media_mimetype, m.media_filename, m.media_size, m.is_from_me,
              m.is_read, m.status, m."timestamp", m.created_at, m.quoted_message_id, m.quoted_body,
              m.quoted_sender,
              CASE WHEN m.message_type = 'poll' THEN m.poll_question END AS poll_question,
              CASE WHEN m.message_type = 'poll' THEN m.poll_max_selections END AS poll_max_selections
)
SELECT chat.created AS chat_created, stored.id, stored.account_id, stored.device_id, stored.chat_id,
       stored.message_id, stored.from_jid, stored.from_name, stored.body, stored.message_type, stored.media_url,
       stored.media_mimetype, stored.media_filename, stored.media_size, stored.is_from_me, stored.is_read,
       stored.status, stored."timestamp", stored.created_at, stored.quoted_message_id, stored.quoted_body,
       stored.quoted_sender, stored.poll_question, stored.poll_max_selections
FROM chat
JOIN stored ON stored.chat_id = chat.id

-- name: outbound_store_sent_final
-- WhatsApp took the pending message ($2): status 'sent', the real stanza id ($3) and ack time ($4); the chat preview
-- ($5) follows it unless a newer message is there (last_message_at never moves backwards); the Idempotency-Key
-- linked to the row (if any) gets its answer ($6 status, $7 body) in the same statement. Retried until it lands
-- (clarin.whatsapp.held): a row no longer pending is left alone (nothing comes back).
WITH msg AS (
    UPDATE messages m SET status = 'sent', message_id = $3, "timestamp" = $4
    WHERE m.id = $2 AND m.account_id = $1 AND m.status = 'pending'
    RETURNING m.id, m.chat_id
), chat AS (
    UPDATE chats c
    SET last_message = CASE WHEN c.last_message_at IS NULL OR $4 >= c.last_message_at THEN $5::text
                            ELSE c.last_message END,
        last_message_at = GREATEST(c.last_message_at, $4),
        updated_at = now()
    FROM msg
    WHERE c.id = msg.chat_id AND c.account_id = $1
    RETURNING c.id
), answered AS (
    UPDATE idempotency_keys k SET status_code = $6, body = $7
    FROM msg
    WHERE k.account_id = $1 AND k.message_id = msg.id AND k.key = $8::varchar AND k.status_code IS NULL
    RETURNING k.key
)
SELECT msg.id, msg.chat_id, (SELECT count(*) FROM answered) AS answered
FROM msg

-- name: outbound_store_not_sent
-- The driver did not take the pending message ($2): the row goes (a failed send is not stored), and so does its
-- chat when this send created it ($3) and it is still empty. The Idempotency-Key ($6): answered with $4/$5 when
-- the message may have reached WhatsApp (a driver error), released (deleted) when $4 is NULL (it surely did not:
-- device not connected), so a retry may send.
WITH gone AS (
    DELETE FROM messages m
    WHERE m.id = $2 AND m.account_id = $1 AND m.status = 'pending'
    RETURNING m.id, m.chat_id
), empty_chat AS (
    DELETE FROM chats c
    USING gone
    WHERE c.id = gone.chat_id AND c.account_id = $1 AND $3::boolean AND c.last_message_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.chat_id = c.id AND o.id <> gone.id)
    RETURNING c.id
), answered AS (
    UPDATE idempotency_keys k SET status_code = $4::integer, body = $5::bytea
    WHERE k.account_id = $1 AND k.key = $6::varchar AND k.message_id = $2 AND k.status_code IS NULL
      AND $4::integer IS NOT NULL
    RETURNING k.key
), released AS (
    DELETE FROM idempotency_keys k
    WHERE k.account_id = $1 AND k.key = $6::varchar AND k.message_id = $2 AND k.status_code IS NULL
      AND $4::integer IS NULL
    RETURNING k.key
)
SELECT (SELECT count(*) FROM gone) AS removed, (SELECT count(*) FROM empty_chat) AS chats_removed,
       (SELECT count(*) FROM answered) + (SELECT count(*) FROM released) AS keys

-- name: outbound_drop_pending_duplicate
-- The stanza id WhatsApp gave is already stored in the chat (an echo got there first): the pending row goes.
DELETE FROM messages m
WHERE m.id = $2 AND m.account_id = $1 AND m.status = 'pending'

-- name: outbound_message_by_stanza
SELECT m.id, m.account_id, m.device_id, m.chat_id, m.message_id, m.from_jid, m.from_name, m.body,
       m.message_type, m.media_url, m.media_mimetype, m.media_filename, m.media_size, m.is_from_me, m.is_read,
       m.status, m."timestamp", m.created_at, m.quoted_message_id, m.quoted_body, m.quoted_sender,
       CASE WHEN m.message_type = 'poll' THEN m.poll_question END AS poll_question,
       CASE WHEN m.message_type = 'poll' THEN m.poll_max_selections END AS poll_max_selections
FROM messages m
WHERE m.account_id = $1 AND m.chat_id = $2 AND m.message_id = $3

-- name: outbound_poll_options_insert
-- The options of a poll just stored ($2 = its DB id), 0-based position = order sent.
INSERT INTO poll_options (message_id, name, vote_count, position)
SELECT m.id, o.name, 0, (o.ord - 1)::int
FROM messages m
CROSS JOIN unnest($3::text[]) WITH ORDINALITY AS o(name, ord)
WHERE m.id = $2 AND m.account_id = $1
RETURNING id, message_id, name, vote_count

-- name: outbound_reaction_target
-- R29: the reacted-to message in the chat of (account, JID), to address its key correctly (fromMe, sender).
SELECT m.is_from_me, m.from_jid
FROM messages m
JOIN chats c ON c.id = m.chat_id
WHERE c.account_id = $1 AND c.jid = $2 AND m.account_id = $1 AND m.message_id = $3

-- name: outbound_reaction_upsert
-- One reaction per (chat, target, sender): emoji, name and time replaced (is_from_me kept).
INSERT INTO message_reactions AS r (account_id, chat_id, target_message_id, sender_jid, sender_name, emoji,
                                    is_from_me, "timestamp")
VALUES ($1, $2, $3, $4, $5, $6, true, $7)
ON CONFLICT (chat_id, target_message_id, sender_jid) DO UPDATE
SET emoji = EXCLUDED.emoji, sender_name = EXCLUDED.sender_name, "timestamp" = EXCLUDED."timestamp",
    updated_at = now()
WHERE r.account_id = $1

-- name: outbound_reaction_delete
DELETE FROM message_reactions r
WHERE r.account_id = $1 AND r.chat_id = $2 AND r.target_message_id = $3 AND r.sender_jid = $4

-- name: forward_original
-- R28: the original, by (account, source chat, stanza id); the chat must be the account's.
SELECT m.body, m.message_type, m.media_url, m.media_mimetype, m.media_filename
FROM messages m
WHERE m.account_id = $1 AND m.chat_id = $2 AND m.message_id = $3

-- name: messages_page
-- R24, newest first, served in order by idx_messages_chat_ts; $3 limit, $4 offset. One row: ``found`` = 0 when
-- the chat is unknown or another account's (404), and ``body``, the page's JSON array (wire_message,
-- 0008_wire_json.sql) with each message's reactions (only the page's stanza ids) and its poll's options and
-- votes, built by PostgreSQL and passed through (issue 13).
WITH page AS (
    SELECT p.msg, p.id, p.message_id, p.message_type, p."timestamp"
    FROM chats c
    LEFT JOIN LATERAL (
        SELECT m AS msg, m.id, m.message_id, m.message_type, m."timestamp"
        FROM messages m
        -- Scoped through the outer chat row (c.account_id = $1). Repeating m.account_id here made the planner
        -- prefer the (account_id, chat_id, message_id) key and sort the whole chat (bench/RESULTS.md).
        -- chat_id = $2, not c.id: the custom plan then sees the chat's own row estimate (chat_id statistics);
        -- with c.id it assumed an average chat and bitmap-scanned + sorted the busiest one (2,229 blocks
        -- instead of 157 for a page 1,000 deep at 10k leads, bench/growth.py).
        WHERE m.chat_id = $2
        ORDER BY m."timestamp" DESC, m.id DESC
        LIMIT $3 OFFSET $4
    ) p ON true
    WHERE c.id = $2 AND c.account_id = $1
)
SELECT count(*) AS found,
       '[' || coalesce(string_agg(wire_message(p.msg, rx.list, po.list, pv.list), ','
                                  ORDER BY p."timestamp" DESC, p.id DESC) FILTER (WHERE p.id IS NOT NULL), '')
           || ']' AS body
FROM page p
-- one probe per message of the page: the unique key (chat_id, target_message_id, sender_jid), and the polls' own
-- keys for polls only (a semi-join against the page let the planner scan the chat's reactions on small tables)
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_reaction(r), ',' ORDER BY r."timestamp", r.id) || ']' AS list
    FROM message_reactions r
    WHERE r.chat_id = $2 AND r.target_message_id = p.message_id AND r.account_id = $1
) rx ON true
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_poll_option(o), ',' ORDER BY o.position, o.id) || ']' AS list
    FROM poll_options o
    WHERE o.message_id = p.id AND p.message_type = 'poll'
) po ON true
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_poll_vote(v), ',' ORDER BY v."timestamp", v.id) || ']' AS list
    FROM poll_votes v
    WHERE v.message_id = p.id AND p.message_type = 'poll'
) pv ON true

-- name: messages_page_before
-- R24 keyset page: messages strictly older than the cursor ($5 timestamp, $6 id) in (timestamp, id) order,
-- an index range of idx_messages_chat_ts. `before=<time>` passes the nil UUID as $6 (= everything before that
-- instant). $3 limit, $4 offset (after the cursor). The answer as messages_page.
WITH page AS (
    SELECT p.msg, p.id, p.message_id, p.message_type, p."timestamp"
    FROM chats c
    LEFT JOIN LATERAL (
        SELECT m AS msg, m.id, m.message_id, m.message_type, m."timestamp"
        FROM messages m
        -- Scoped through the outer chat row (c.account_id = $1). Repeating m.account_id here made the planner
        -- prefer the (account_id, chat_id, message_id) key and sort the whole chat (bench/RESULTS.md).
        WHERE m.chat_id = $2 AND (m."timestamp", m.id) < ($5::timestamptz, $6::uuid)  -- $2: as messages_page
        ORDER BY m."timestamp" DESC, m.id DESC
        LIMIT $3 OFFSET $4
    ) p ON true
    WHERE c.id = $2 AND c.account_id = $1
)
SELECT count(*) AS found,
       '[' || coalesce(string_agg(wire_message(p.msg, rx.list, po.list, pv.list), ','
                                  ORDER BY p."timestamp" DESC, p.id DESC) FILTER (WHERE p.id IS NOT NULL), '')
           || ']' AS body
FROM page p
-- one probe per message of the page: the unique key (chat_id, target_message_id, sender_jid), and the polls' own
-- keys for polls only (a semi-join against the page let the planner scan the chat's reactions on small tables)
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_reaction(r), ',' ORDER BY r."timestamp", r.id) || ']' AS list
    FROM message_reactions r
    WHERE r.chat_id = $2 AND r.target_message_id = p.message_id AND r.account_id = $1
) rx ON true
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_poll_option(o), ',' ORDER BY o.position, o.id) || ']' AS list
    FROM poll_options o
    WHERE o.message_id = p.id AND p.message_type = 'poll'
) po ON true
LEFT JOIN LATERAL (
    SELECT '[' || string_agg(wire_poll_vote(v), ',' ORDER BY v."timestamp", v.id) || ']' AS list
    FROM poll_votes v
    WHERE v.message_id = p.id AND p.message_type = 'poll'
) pv ON true

-- name: messages_cursor
-- R24 `before_id`: the cursor message's (timestamp, id), only inside this chat of this account. The primary-key
-- probe is fenced (OFFSET 0): the generic plan of the flat WHERE scanned the chat's (account_id, chat_id,
-- message_id) key range and filtered on id, 2,424 blocks for a 4.5k-message chat instead of 4 (bench/growth.py).
SELECT k."timestamp", k.id
FROM (SELECT m."timestamp", m.id, m.chat_id, m.account_id FROM messages m WHERE m.id = $3 OFFSET 0) AS k
WHERE k.chat_id = $2 AND k.account_id = $1

