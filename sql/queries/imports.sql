-- CSV/XLSX import (spec api.md §4.11 R74, integrations.md part D, schema.md §5.1, §5.4).
-- Rows arrive in batches of at most 1000, already de-duplicated by JID within the batch; one
-- statement per table per batch, each batch in its own transaction.

-- name: import_default_stages
-- Stages of the account's default pipeline, first stage first (stage matching by name).
SELECT ps.id, ps.pipeline_id, ps.name
FROM pipelines p
JOIN pipeline_stages ps ON ps.pipeline_id = p.id
WHERE p.account_id = $1 AND p.is_default
ORDER BY ps.position, ps.created_at, ps.id

-- name: import_upsert_contacts
-- Contact upsert on (account_id, jid): name and phone replaced when the file has a value; email,
-- company, last_name and notes filled only where the contact has none.
INSERT INTO contacts (account_id, jid, phone, name, email, company, last_name, notes, is_group)
SELECT $1::uuid, u.jid, u.phone, NULLIF(u.name, ''), NULLIF(u.email, ''), NULLIF(u.company, ''),
       NULLIF(u.last_name, ''), NULLIF(u.notes, ''), FALSE
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
     AS u(jid, phone, name, email, company, last_name, notes)
ON CONFLICT (account_id, jid) DO UPDATE
SET name = COALESCE(EXCLUDED.name, contacts.name),
    phone = COALESCE(NULLIF(EXCLUDED.phone, ''), contacts.phone),
    email = COALESCE(NULLIF(contacts.email, ''), EXCLUDED.email, contacts.email),
    company = COALESCE(NULLIF(contacts.company, ''), EXCLUDED.company, contacts.company),
    last_name = COALESCE(NULLIF(contacts.last_name, ''), EXCLUDED.last_name, contacts.last_name),
    notes = COALESCE(NULLIF(contacts.notes, ''), EXCLUDED.notes, contacts.notes),
    updated_at = now()

-- name: import_upsert_leads
-- Lead upsert on (account_id, jid), source 'csv_import', status 'new', linked to the contact with the
-- same JID when there is one. On conflict only name (when non-empty), phone, tags (when the row has
-- tags), the missing contact link and updated_at change. $7 holds each row's tags as a JSON array.
INSERT INTO leads (account_id, jid, contact_id, name, phone, email, notes, source, status, tags, company,
                   last_name, age, pipeline_id, stage_id)
SELECT $1::uuid, u.jid, c.id, NULLIF(u.name, ''), u.phone, NULLIF(u.email, ''), NULLIF(u.notes, ''),
       'csv_import', 'new',
       CASE WHEN u.tags IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(u.tags::jsonb)) END,
       NULLIF(u.company, ''), NULLIF(u.last_name, ''), u.age, u.pipeline_id, u.stage_id
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
            $10::int[], $11::uuid[], $12::uuid[])
     AS u(jid, name, phone, email, notes, tags, company, last_name, age, pipeline_id, stage_id)
LEFT JOIN contacts c ON c.account_id = $1::uuid AND c.jid = u.jid
ON CONFLICT (account_id, jid) DO UPDATE
SET name = COALESCE(EXCLUDED.name, leads.name),
    phone = EXCLUDED.phone,
    tags = COALESCE(EXCLUDED.tags, leads.tags),
    contact_id = COALESCE(leads.contact_id, EXCLUDED.contact_id),
    updated_at = now()
