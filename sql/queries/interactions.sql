-- Interactions (spec api.md §4.14, R45, R83; schema.md §3.19, §5.7). $1 = account_id everywhere.
-- Every read joins the author's display name (created_by_name) and the event's name (event_name); timelines are
-- newest first and served by idx_interactions_<x> (x_id, created_at DESC).

-- name: interactions_refs
-- R98 ownership check of every referenced id in one round trip: a FALSE flag or a NULL participant_event
-- (with $5 given) means the id is not the caller's.
SELECT ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM contacts c WHERE c.id = $2::uuid AND c.account_id = $1)) AS contact_ok,
       ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM leads l WHERE l.id = $3::uuid AND l.account_id = $1)) AS lead_ok,
       ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM events e WHERE e.id = $4::uuid AND e.account_id = $1)) AS event_ok,
       (SELECT p.event_id FROM event_participants p JOIN events e ON e.id = p.event_id
        WHERE p.id = $5::uuid AND e.account_id = $1) AS participant_event

-- name: interactions_create
WITH i AS (
    INSERT INTO interactions (account_id, contact_id, lead_id, event_id, participant_id, type, direction, outcome,
                              notes, next_action, next_action_date, created_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    RETURNING id, account_id, contact_id, lead_id, event_id, participant_id, type, direction, outcome, notes,
              next_action, next_action_date, created_by, created_at
)
SELECT i.id, i.account_id, i.contact_id, i.lead_id, i.event_id, i.participant_id, i.type, i.direction, i.outcome,
       i.notes, i.next_action, i.next_action_date, i.created_by, i.created_at, u.display_name AS created_by_name,
       e.name AS event_name
FROM i
LEFT JOIN users u ON u.id = i.created_by
LEFT JOIN events e ON e.id = i.event_id

-- name: interactions_apply_to_participant
-- §5.7 side effects of a logged interaction on its participant ($2), in the same transaction:
-- outcome confirmed / declined sets the status (confirmed also stamps confirmed_at); answered, callback and
-- rescheduled move invited → contacted; when $4 (the interaction carries a next action or date) both
-- next_action and next_action_date are copied (an absent one becomes NULL).
UPDATE event_participants p
SET status = CASE
        WHEN $3::text = 'confirmed' THEN 'confirmed'
        WHEN $3::text = 'declined' THEN 'declined'
        WHEN $3::text IN ('answered', 'callback', 'rescheduled') AND p.status = 'invited' THEN 'contacted'
        ELSE p.status
    END,
    confirmed_at = CASE WHEN $3::text = 'confirmed' THEN now() ELSE p.confirmed_at END,
    next_action = CASE WHEN $4::bool THEN $5::text ELSE p.next_action END,
    next_action_date = CASE WHEN $4::bool THEN $6::timestamptz ELSE p.next_action_date END,
    updated_at = now()
FROM events e
WHERE p.id = $2 AND e.id = p.event_id AND e.account_id = $1
RETURNING p.id, p.event_id

-- name: interactions_by_participant
SELECT i.id, i.account_id, i.contact_id, i.lead_id, i.event_id, i.participant_id, i.type, i.direction, i.outcome,
       i.notes, i.next_action, i.next_action_date, i.created_by, i.created_at, u.display_name AS created_by_name,
       e.name AS event_name
FROM interactions i
LEFT JOIN users u ON u.id = i.created_by
LEFT JOIN events e ON e.id = i.event_id
WHERE i.account_id = $1 AND i.participant_id = $2
ORDER BY i.created_at DESC, i.id DESC
LIMIT $3 OFFSET $4

-- name: interactions_by_event
SELECT i.id, i.account_id, i.contact_id, i.lead_id, i.event_id, i.participant_id, i.type, i.direction, i.outcome,
       i.notes, i.next_action, i.next_action_date, i.created_by, i.created_at, u.display_name AS created_by_name,
       e.name AS event_name
FROM interactions i
LEFT JOIN users u ON u.id = i.created_by
LEFT JOIN events e ON e.id = i.event_id
WHERE i.account_id = $1 AND i.event_id = $2
ORDER BY i.created_at DESC, i.id DESC
LIMIT $3 OFFSET $4

-- name: interactions_by_contact
SELECT i.id, i.account_id, i.contact_id, i.lead_id, i.event_id, i.participant_id, i.type, i.direction, i.outcome,
       i.notes, i.next_action, i.next_action_date, i.created_by, i.created_at, u.display_name AS created_by_name,
       e.name AS event_name
FROM interactions i
LEFT JOIN users u ON u.id = i.created_by
LEFT JOIN events e ON e.id = i.event_id
WHERE i.account_id = $1 AND i.contact_id = $2
ORDER BY i.created_at DESC, i.id DESC
LIMIT $3 OFFSET $4

-- name: interactions_by_lead
SELECT i.id, i.account_id, i.contact_id, i.lead_id, i.event_id, i.participant_id, i.type, i.direction, i.outcome,
       i.notes, i.next_action, i.next_action_date, i.created_by, i.created_at, u.display_name AS created_by_name,
       e.name AS event_name
FROM interactions i
LEFT JOIN users u ON u.id = i.created_by
LEFT JOIN events e ON e.id = i.event_id
WHERE i.account_id = $1 AND i.lead_id = $2
ORDER BY i.created_at DESC, i.id DESC
LIMIT $3 OFFSET $4

-- name: interactions_contact_exists
SELECT EXISTS (SELECT 1 FROM contacts c WHERE c.id = $2 AND c.account_id = $1) AS found

-- name: interactions_lead_exists
SELECT EXISTS (SELECT 1 FROM leads l WHERE l.id = $2 AND l.account_id = $1) AS found

-- name: interactions_delete
DELETE FROM interactions
WHERE id = $2 AND account_id = $1
RETURNING id, contact_id, lead_id, event_id, participant_id
