-- Tags (R54–R60). Names are unique per account (tags_account_id_name_key). Junction rows of a deleted tag go by
-- FK CASCADE (all four junctions). Assign/remove/list exist once per entity type, chosen by a dict in the service;
-- the entity and the tag must both belong to the caller's account (participants through their event).

-- name: tags_list
SELECT id, account_id, name, color, created_at, updated_at
FROM tags
WHERE account_id = $1
ORDER BY name, id
LIMIT $2 OFFSET $3

-- name: tag_create
-- A duplicate name returns no row (409 in the service), never a unique-violation error.
INSERT INTO tags (account_id, name, color)
VALUES ($1, $2, $3)
ON CONFLICT ON CONSTRAINT tags_account_id_name_key DO NOTHING
RETURNING id, account_id, name, color, created_at, updated_at

-- name: tag_update
-- Partial: NULL keeps the column.
UPDATE tags
SET name = COALESCE($3::text, name), color = COALESCE($4::text, color), updated_at = now()
WHERE id = $1 AND account_id = $2
RETURNING id, account_id, name, color, created_at, updated_at

-- name: tag_delete
DELETE FROM tags WHERE id = $1 AND account_id = $2 RETURNING id

-- name: tag_assign_contact
-- $1 contact id, $2 tag id, $3 account. Idempotent; changed = 0 when the link already existed.
WITH e AS (
    SELECT c.id FROM contacts c WHERE c.id = $1 AND c.account_id = $3
), t AS (
    SELECT tg.id FROM tags tg WHERE tg.id = $2 AND tg.account_id = $3
), ins AS (
    INSERT INTO contact_tags (contact_id, tag_id)
    SELECT e.id, t.id FROM e, t
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e) AS entity_found, EXISTS (SELECT 1 FROM t) AS tag_found,
       (SELECT count(*)::int FROM ins) AS changed

-- name: tag_remove_contact
-- $1 contact id, $2 tag id, $3 account. Idempotent; changed = 0 when there was no link.
WITH e AS (
    SELECT c.id FROM contacts c WHERE c.id = $1 AND c.account_id = $3
), t AS (
    SELECT tg.id FROM tags tg WHERE tg.id = $2 AND tg.account_id = $3
), del AS (
    DELETE FROM contact_tags j
    USING e, t
    WHERE j.contact_id = e.id AND j.tag_id = t.id
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e) AS entity_found, EXISTS (SELECT 1 FROM t) AS tag_found,
       (SELECT count(*)::int FROM del) AS changed

-- name: tag_assign_lead
-- $1 lead id, $2 tag id, $3 account. Idempotent; changed = 0 when the link already existed.
WITH e AS (
    SELECT l.id FROM leads l WHERE l.id = $1 AND l.account_id = $3
), t AS (
    SELECT tg.id FROM tags tg WHERE tg.id = $2 AND tg.account_id = $3
), ins AS (
    INSERT INTO lead_tags (lead_id, tag_id)
    SELECT e.id, t.id FROM e, t
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e) AS entity_found, EXISTS (SELECT 1 FROM t) AS tag_found,
       (SELECT count(*)::int FROM ins) AS changed

-- name: tag_remove_lead
-- $1 lead id, $2 tag id, $3 account. Idempotent; changed = 0 when there was no link.
WITH e AS (
    SELECT l.id FROM leads l WHERE l.id = $1 AND l.account_id = $3
), t AS (
    SELECT tg.id FROM tags tg WHERE tg.id = $2 AND tg.account_id = $3
), del AS (
    DELETE FROM lead_tags j
    USING e, t
    WHERE j.lead_id = e.id AND j.tag_id = t.id
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e) AS entity_found, EXISTS (SELECT 1 FROM t) AS tag_found,
       (SELECT count(*)::int FROM del) AS changed

-- name: tag_assign_chat
-- $1 chat id, $2 tag id, $3 account. Idempotent; changed = 0 when the link already existed.
WITH e AS (
    SELECT c.id FROM chats c WHERE c.id = $1 AND c.account_id = $3
), t AS (
    SELECT tg.id FROM tags tg WHERE tg.id = $2 AND tg.account_id = $3
), ins AS (
    INSERT INTO chat_tags (chat_id, tag_id)
    SELECT e.id, t.id FROM e, t
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e) AS entity_found, EXISTS (SELECT 1 FROM t) AS tag_found,
       (SELECT count(*)::int FROM ins) AS changed

-- name: tag_remove_chat
-- $1 chat id, $2 tag id, $3 account. Idempotent; changed = 0 when there was no link.
WITH e AS (
    SELECT c.id FROM chats c WHERE c.id = $1 AND c.account_id = $3
), t AS (
    SELECT tg.id FROM tags tg WHERE tg.id = $2 AND tg.account_id = $3
), del AS (
    DELETE FROM chat_tags j
    USING e, t
    WHERE j.chat_id = e.id AND j.tag_id = t.id
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e) AS entity_found, EXISTS (SELECT 1 FROM t) AS tag_found,
       (SELECT count(*)::int FROM del) AS changed

-- name: tag_assign_participant
-- $1 participant id, $2 tag id, $3 account. Idempotent; changed = 0 when the link already existed.
WITH e AS (
    SELECT ep.id FROM event_participants ep JOIN events ev ON ev.id = ep.event_id
    WHERE ep.id = $1 AND ev.account_id = $3
), t AS (
    SELECT tg.id FROM tags tg WHERE tg.id = $2 AND tg.account_id = $3
), ins AS (
    INSERT INTO participant_tags (participant_id, tag_id)
    SELECT e.id, t.id FROM e, t
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e) AS entity_found, EXISTS (SELECT 1 FROM t) AS tag_found,
       (SELECT count(*)::int FROM ins) AS changed

-- name: tag_remove_participant
-- $1 participant id, $2 tag id, $3 account. Idempotent; changed = 0 when there was no link.
WITH e AS (
    SELECT ep.id FROM event_participants ep JOIN events ev ON ev.id = ep.event_id
    WHERE ep.id = $1 AND ev.account_id = $3
), t AS (
    SELECT tg.id FROM tags tg WHERE tg.id = $2 AND tg.account_id = $3
), del AS (
    DELETE FROM participant_tags j
    USING e, t
    WHERE j.participant_id = e.id AND j.tag_id = t.id
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM e) AS entity_found, EXISTS (SELECT 1 FROM t) AS tag_found,
       (SELECT count(*)::int FROM del) AS changed

-- name: tags_of_contact
-- $1 contact id, $2 account. No row: the contact is unknown here (404); one row with NULL tag columns: no tags.
SELECT t.id, t.account_id, t.name, t.color, t.created_at, t.updated_at
FROM contacts e
LEFT JOIN (contact_tags j JOIN tags t ON t.id = j.tag_id AND t.account_id = $2) ON j.contact_id = e.id
WHERE e.id = $1 AND e.account_id = $2
ORDER BY t.name, t.id

-- name: tags_of_lead
-- $1 lead id, $2 account. No row: the lead is unknown here (404); one row with NULL tag columns: no tags.
SELECT t.id, t.account_id, t.name, t.color, t.created_at, t.updated_at
FROM leads e
LEFT JOIN (lead_tags j JOIN tags t ON t.id = j.tag_id AND t.account_id = $2) ON j.lead_id = e.id
WHERE e.id = $1 AND e.account_id = $2
ORDER BY t.name, t.id

-- name: tags_of_chat
-- $1 chat id, $2 account. No row: the chat is unknown here (404); one row with NULL tag columns: no tags.
SELECT t.id, t.account_id, t.name, t.color, t.created_at, t.updated_at
FROM chats e
LEFT JOIN (chat_tags j JOIN tags t ON t.id = j.tag_id AND t.account_id = $2) ON j.chat_id = e.id
WHERE e.id = $1 AND e.account_id = $2
ORDER BY t.name, t.id

-- name: tags_of_participant
-- $1 participant id, $2 account. No row: the participant is unknown here (404); one row with NULL tag columns: no tags.
SELECT t.id, t.account_id, t.name, t.color, t.created_at, t.updated_at
FROM event_participants e
JOIN events ev ON ev.id = e.event_id
LEFT JOIN (participant_tags j JOIN tags t ON t.id = j.tag_id AND t.account_id = $2) ON j.participant_id = e.id
WHERE e.id = $1 AND ev.account_id = $2
ORDER BY t.name, t.id
