-- Events and participants (spec api.md §4.13, schema.md §3.17–3.18, §5.2, §5.5, §5.7). $1 = account_id everywhere;
-- event_participants has no account_id, so its statements join events for the tenant check.

-- name: events_page
-- R85. $2 status ('' = any), $3 escaped ILIKE pattern ('' = no search) over name/description/location,
-- $4 limit, $5 offset. Total and page in one round trip (one row with NULL page columns past the end).
SELECT t.total, x.id, x.account_id, x.name, x.description, x.event_date, x.event_end, x.location, x.status, x.color,
       x.created_by, x.created_at, x.updated_at
FROM (
    SELECT count(*) AS total
    FROM events e
    WHERE e.account_id = $1
      AND ($2::text = '' OR e.status = $2::text)
      AND ($3::text = '' OR e.name ILIKE $3::text OR e.description ILIKE $3::text OR e.location ILIKE $3::text)
) t
LEFT JOIN LATERAL (
    SELECT e.id, e.account_id, e.name, e.description, e.event_date, e.event_end, e.location, e.status, e.color,
           e.created_by, e.created_at, e.updated_at
    FROM events e
    WHERE e.account_id = $1
      AND ($2::text = '' OR e.status = $2::text)
      AND ($3::text = '' OR e.name ILIKE $3::text OR e.description ILIKE $3::text OR e.location ILIKE $3::text)
    ORDER BY COALESCE(e.event_date, e.created_at) DESC, e.id DESC
    LIMIT $4 OFFSET $5
) x ON true
ORDER BY COALESCE(x.event_date, x.created_at) DESC, x.id DESC

-- name: events_participant_counts
-- participant_counts for a whole page of events ($2) in one grouped query.
SELECT p.event_id, p.status, count(*) AS n
FROM event_participants p
JOIN events e ON e.id = p.event_id
WHERE e.account_id = $1 AND p.event_id = ANY($2::uuid[])
GROUP BY p.event_id, p.status
ORDER BY p.event_id, p.status

-- name: events_create
INSERT INTO events (account_id, name, description, event_date, event_end, location, status, color, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id, account_id, name, description, event_date, event_end, location, status, color, created_by,
          created_at, updated_at

-- name: events_get
SELECT e.id, e.account_id, e.name, e.description, e.event_date, e.event_end, e.location, e.status, e.color,
       e.created_by, e.created_at, e.updated_at
FROM events e
WHERE e.id = $2 AND e.account_id = $1

-- name: events_get_for_update
SELECT e.id, e.account_id, e.name, e.description, e.event_date, e.event_end, e.location, e.status, e.color,
       e.created_by, e.created_at, e.updated_at
FROM events e
WHERE e.id = $2 AND e.account_id = $1
FOR UPDATE

-- name: events_update
UPDATE events
SET name = $3, description = $4, event_date = $5, event_end = $6, location = $7, status = $8, color = $9,
    updated_at = now()
WHERE id = $2 AND account_id = $1
RETURNING id, account_id, name, description, event_date, event_end, location, status, color, created_by,
          created_at, updated_at

-- name: events_delete_interactions
-- R90: the event's interactions are hard-deleted (as the original), not just unlinked.
DELETE FROM interactions WHERE account_id = $1 AND event_id = $2

-- name: events_delete_participants
DELETE FROM event_participants p USING events e
WHERE e.id = p.event_id AND e.account_id = $1 AND p.event_id = $2

-- name: events_delete
DELETE FROM events WHERE id = $2 AND account_id = $1 RETURNING id

-- name: events_of_contact
-- R84 (broken in the original: SELECT DISTINCT with an ORDER BY expression outside the list). EXISTS needs
-- no DISTINCT. No row at all = the contact is not the caller's; one row of NULLs = no events.
SELECT x.id, x.account_id, x.name, x.description, x.event_date, x.event_end, x.location, x.status, x.color,
       x.created_by, x.created_at, x.updated_at
FROM contacts c
LEFT JOIN LATERAL (
    SELECT e.id, e.account_id, e.name, e.description, e.event_date, e.event_end, e.location, e.status, e.color,
           e.created_by, e.created_at, e.updated_at
    FROM events e
    WHERE e.account_id = $1
      AND EXISTS (SELECT 1 FROM event_participants p WHERE p.event_id = e.id AND p.contact_id = c.id)
    ORDER BY COALESCE(e.event_date, e.created_at) DESC, e.id DESC
    LIMIT $3
) x ON true
WHERE c.id = $2 AND c.account_id = $1
ORDER BY COALESCE(x.event_date, x.created_at) DESC, x.id DESC

-- name: participants_page
-- R91. $2 event, $3 status ('' = any), $4 escaped ILIKE pattern ('' = none) over name/last_name/phone/email,
-- $5 tag ids|NULL (any-of), $6 has_phone, $7 limit, $8 offset. No row = not the caller's event.
SELECT t.total, x.id, x.event_id, x.contact_id, x.name, x.last_name, x.short_name, x.phone, x.email, x.age, x.status,
       x.notes, x.next_action, x.next_action_date, x.invited_at, x.confirmed_at, x.attended_at, x.created_at,
       x.updated_at
FROM events ev
CROSS JOIN LATERAL (
    SELECT count(*) AS total
    FROM event_participants p
    WHERE p.event_id = ev.id
      AND ($3::text = '' OR p.status = $3::text)
      AND ($4::text = '' OR p.name ILIKE $4::text OR p.last_name ILIKE $4::text OR p.phone ILIKE $4::text
           OR p.email ILIKE $4::text)
      AND ($5::uuid[] IS NULL OR EXISTS (
          SELECT 1 FROM participant_tags pt WHERE pt.participant_id = p.id AND pt.tag_id = ANY($5::uuid[])))
      AND (NOT $6::bool OR (p.phone IS NOT NULL AND p.phone <> ''))
) t
LEFT JOIN LATERAL (
    SELECT p.id, p.event_id, p.contact_id, p.name, p.last_name, p.short_name, p.phone, p.email, p.age, p.status,
           p.notes, p.next_action, p.next_action_date, p.invited_at, p.confirmed_at, p.attended_at, p.created_at,
           p.updated_at
    FROM event_participants p
    WHERE p.event_id = ev.id
      AND ($3::text = '' OR p.status = $3::text)
      AND ($4::text = '' OR p.name ILIKE $4::text OR p.last_name ILIKE $4::text OR p.phone ILIKE $4::text
           OR p.email ILIKE $4::text)
      AND ($5::uuid[] IS NULL OR EXISTS (
          SELECT 1 FROM participant_tags pt WHERE pt.participant_id = p.id AND pt.tag_id = ANY($5::uuid[])))
      AND (NOT $6::bool OR (p.phone IS NOT NULL AND p.phone <> ''))
    ORDER BY p.next_action_date ASC NULLS LAST, p.name ASC, p.id
    LIMIT $7 OFFSET $8
) x ON true
WHERE ev.id = $2 AND ev.account_id = $1
ORDER BY x.next_action_date ASC NULLS LAST, x.name ASC, x.id

-- name: participants_tags_for
-- Tags of a whole page of participants ($2) in one query; grouped by participant_id in Python.
SELECT pt.participant_id, t.id, t.account_id, t.name, t.color, t.created_at, t.updated_at
FROM participant_tags pt
JOIN tags t ON t.id = pt.tag_id
WHERE pt.participant_id = ANY($2::uuid[]) AND t.account_id = $1
ORDER BY t.name, t.id

-- name: participants_upcoming
-- R87: open next actions of the account's participants, soonest first (idx_event_participants_next_action).
SELECT p.id, p.event_id, p.contact_id, p.name, p.last_name, p.short_name, p.phone, p.email, p.age, p.status,
       p.notes, p.next_action, p.next_action_date, p.invited_at, p.confirmed_at, p.attended_at, p.created_at,
       p.updated_at
FROM event_participants p
JOIN events e ON e.id = p.event_id
WHERE e.account_id = $1 AND p.next_action_date IS NOT NULL
  AND p.status NOT IN ('attended', 'no_show', 'declined')
ORDER BY p.next_action_date ASC, p.id
LIMIT $2

-- name: participants_event_lock
-- The caller's event, locked against a concurrent delete while participants are added.
SELECT e.id FROM events e WHERE e.id = $2 AND e.account_id = $1 FOR KEY SHARE

-- name: participants_owned_contacts
SELECT c.id FROM contacts c WHERE c.account_id = $1 AND c.id = ANY($2::uuid[])

-- name: participants_create
INSERT INTO event_participants (event_id, contact_id, name, last_name, short_name, phone, email, age, status, invited_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'invited', now())
RETURNING id, event_id, contact_id, name, last_name, short_name, phone, email, age, status, notes, next_action,
          next_action_date, invited_at, confirmed_at, attended_at, created_at, updated_at

-- name: participants_bulk_create
-- R93: one statement for the whole list; rows hitting a unique key (phone / email / contact per event, also
-- against each other) are skipped and not returned.
INSERT INTO event_participants (event_id, contact_id, name, last_name, short_name, phone, email, age, status, invited_at)
SELECT $1, u.contact_id, u.name, u.last_name, u.short_name, u.phone, u.email, u.age, 'invited', now()
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[])
     WITH ORDINALITY AS u(contact_id, name, last_name, short_name, phone, email, age, ord)
ORDER BY u.ord
ON CONFLICT DO NOTHING
RETURNING id

-- name: participants_get
SELECT p.id, p.event_id, p.contact_id, p.name, p.last_name, p.short_name, p.phone, p.email, p.age, p.status,
       p.notes, p.next_action, p.next_action_date, p.invited_at, p.confirmed_at, p.attended_at, p.created_at,
       p.updated_at
FROM event_participants p
JOIN events e ON e.id = p.event_id
WHERE p.id = $3 AND p.event_id = $2 AND e.account_id = $1

-- name: participants_lock
SELECT p.id
FROM event_participants p
JOIN events e ON e.id = p.event_id
WHERE p.id = $3 AND p.event_id = $2 AND e.account_id = $1
FOR UPDATE OF p

-- name: participants_update
-- R94 partial update: a NULL parameter keeps the column; '' clears an optional text column.
UPDATE event_participants p
SET name = COALESCE($4::text, p.name),
    last_name = CASE WHEN $5::text IS NULL THEN p.last_name ELSE NULLIF($5::text, '') END,
    short_name = CASE WHEN $6::text IS NULL THEN p.short_name ELSE NULLIF($6::text, '') END,
    phone = CASE WHEN $7::text IS NULL THEN p.phone ELSE NULLIF($7::text, '') END,
    email = CASE WHEN $8::text IS NULL THEN p.email ELSE NULLIF($8::text, '') END,
    notes = CASE WHEN $9::text IS NULL THEN p.notes ELSE NULLIF($9::text, '') END,
    next_action = CASE WHEN $10::text IS NULL THEN p.next_action ELSE NULLIF($10::text, '') END,
    age = COALESCE($11::int, p.age),
    next_action_date = COALESCE($12::timestamptz, p.next_action_date),
    updated_at = now()
FROM events e
WHERE p.id = $3 AND p.event_id = $2 AND e.id = p.event_id AND e.account_id = $1
RETURNING p.id, p.event_id, p.contact_id, p.name, p.last_name, p.short_name, p.phone, p.email, p.age, p.status,
          p.notes, p.next_action, p.next_action_date, p.invited_at, p.confirmed_at, p.attended_at, p.created_at,
          p.updated_at

-- name: participants_sync_contact
-- §5.5 participant → its contact: name always, last_name/short_name/email/age overwritten (NULL too), phone
-- only when the participant has one.
UPDATE contacts c
SET name = p.name,
    last_name = p.last_name,
    short_name = p.short_name,
    email = p.email,
    age = p.age,
    phone = COALESCE(p.phone, c.phone),
    updated_at = now()
FROM event_participants p
WHERE p.id = $2 AND c.id = p.contact_id AND c.account_id = $1
RETURNING c.id

-- name: participants_set_status
-- R95: confirmed / attended also stamp confirmed_at / attended_at.
UPDATE event_participants p
SET status = $4::text,
    confirmed_at = CASE WHEN $4::text = 'confirmed' THEN now() ELSE p.confirmed_at END,
    attended_at = CASE WHEN $4::text = 'attended' THEN now() ELSE p.attended_at END,
    updated_at = now()
FROM events e
WHERE p.id = $3 AND p.event_id = $2 AND e.id = p.event_id AND e.account_id = $1
RETURNING p.id

-- name: participants_delete_interactions
-- R96: the participant's interactions are hard-deleted (as the original).
DELETE FROM interactions WHERE account_id = $1 AND participant_id = $2

-- name: participants_delete
DELETE FROM event_participants p USING events e
WHERE p.id = $3 AND p.event_id = $2 AND e.id = p.event_id AND e.account_id = $1
RETURNING p.id
