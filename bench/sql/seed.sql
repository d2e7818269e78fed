-- Benchmark data set (bench/seed.py). Set-based: every table is one INSERT … SELECT over generate_series,
-- all inside one transaction. Deterministic: ids are hashes of (seed, kind, account, index), every "random"
-- choice is hashint8extended(key, seed*1000 + salt) — no random(), no now() (times hang off $anchor).
-- Sizes come from the pg_temp.bench_plan table (one row per account) that bench_plan_create fills.

-- name: bench_helpers
-- Session-local helpers (pg_temp): gone when the seeding connection closes. Inlinable SQL functions.
-- Accounts, users and devices: md5 ids (other bench code derives the large account's id the same way).
CREATE OR REPLACE FUNCTION pg_temp.bid(seed int, kind text, a int, i bigint) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT md5(seed::text || ':' || kind || ':' || a::text || ':' || i::text)::uuid $$;
-- Every other row: 128 bits from two 64-bit hashes of the index, seeded by (seed, kind, account). A few times
-- cheaper than md5 (no text to build, no cryptohash context): it runs for each of the ~30 M ids and foreign keys at
-- --scale 10. i stays below 2^31, where hashint8extended hashes the value as it is (above, it folds the two
-- halves together: different indexes could share a hash). Inlined with a constant kind, the CASE folds away. i is
-- used twice, so PostgreSQL inlines the call only when i is a column or a cheap expression: a derived index (a
-- message's chat, a lead's tag) is computed in a LATERAL (… OFFSET 0) subquery, which keeps it a column.
CREATE OR REPLACE FUNCTION pg_temp.hid(seed int, kind text, a int, i bigint) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT encode(int8send(hashint8extended(i, ((seed::bigint * 100 + CASE kind WHEN 'pipe' THEN 1 WHEN 'stage' THEN 2
                                                   WHEN 'tag' THEN 3 WHEN 'contact' THEN 4 WHEN 'lead' THEN 5 WHEN 'chat' THEN 6
                                                   WHEN 'msg' THEN 7 WHEN 'event' THEN 8 WHEN 'part' THEN 9
                                                   WHEN 'inter' THEN 10 END) * 1000 + a) * 2))
                        || int8send(hashint8extended(i, ((seed::bigint * 100 + CASE kind WHEN 'pipe' THEN 1 WHEN 'stage' THEN 2
                                                   WHEN 'tag' THEN 3 WHEN 'contact' THEN 4 WHEN 'lead' THEN 5 WHEN 'chat' THEN 6
                                                   WHEN 'msg' THEN 7 WHEN 'event' THEN 8 WHEN 'part' THEN 9
                                                   WHEN 'inter' THEN 10 END) * 1000 + a) * 2 + 1)), 'hex')::uuid $$;
CREATE OR REPLACE FUNCTION pg_temp.h(seed int, salt int, a int, i bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT hashint8extended(a::bigint * 100000000 + i, seed::bigint * 1000 + salt) & 9223372036854775807 $$;
CREATE OR REPLACE FUNCTION pg_temp.u(seed int, salt int, a int, i bigint) RETURNS float8
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (hashint8extended(a::bigint * 100000000 + i, seed::bigint * 1000 + salt) & 9223372036854775807)::float8
                 / 9223372036854775807::float8 $$;
-- A phone number that is unique per index (i * 7919 + c is a bijection mod 10^8): '519' + 8 digits.
CREATE OR REPLACE FUNCTION pg_temp.phone(seed int, i bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT '519' || lpad(((i * 7919 + seed::bigint * 104729) % 100000000)::text, 8, '0') $$;
CREATE OR REPLACE FUNCTION pg_temp.first_name(x bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('{Ana,Luis,María,José,Carmen,Jorge,Rosa,Carlos,Lucía,Miguel,Elena,Pedro,Sofía,Juan,Valeria,Diego,
              Camila,Andrés,Daniela,Fernando,Gabriela,Ricardo,Paola,Javier,Natalia,Raúl,Mónica,Hugo,Patricia,
              Óscar,Isabel,Alberto,Claudia,Sergio,Verónica,Manuel,Lorena,Víctor,Adriana,Renzo}'::text[])[1 + $1 % 40] $$;
CREATE OR REPLACE FUNCTION pg_temp.last_name(x bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('{García,Rodríguez,Quispe,Flores,Sánchez,Ramírez,Torres,Díaz,Vargas,Castillo,Mendoza,Rojas,Huamán,
              Chávez,Gutiérrez,Espinoza,Romero,Vásquez,Salazar,Reyes,Cruz,Morales,Ortiz,Aguilar,Medina,Paredes,
              Herrera,Silva,Castro,Ramos}'::text[])[1 + $1 % 30] $$;
CREATE OR REPLACE FUNCTION pg_temp.company(x bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('{Andina SAC,Inversiones Sol,Grupo Pacífico,Textiles Lima,Agro Norte,Minera Sur,Café Selva,
              Logística Express,Constructora Inca,Farmacia Salud,Tecnología Perú,Consultores Unidos,
              Panadería San José,Hotel Miraflores,Clínica Central,Colegio Los Andes,Importadora Asia,
              Transportes Rápidos,Estudio Legal Vega,Restaurante El Sabor}'::text[])[1 + $1 % 20] $$;
CREATE OR REPLACE FUNCTION pg_temp.phrase(x bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('{Hola buenas tardes,¿Cuál es el precio?,Gracias por la información,Quisiera más detalles del plan,
              ¿Tienen delivery a provincia?,Perfecto lo confirmo mañana,Ok,Le envío la cotización en un momento,
              ¿Hasta qué hora atienden?,Ya realicé el pago,Buenos días,¿Sigue disponible?,
              Le llamo en 5 minutos,Necesito la factura por favor,Excelente servicio,
              ¿Cuándo empieza el curso?,Sí me interesa,No por ahora gracias,Le comparto la ubicación,
              Confirmado para el sábado}'::text[])[1 + $1 % 20] $$;
-- One row per account: its ids and sizes (filled by bench_plan_create, dropped at commit).
CREATE TEMP TABLE bench_plan (
    a int PRIMARY KEY, seed int NOT NULL, anchor timestamptz NOT NULL,
    account_id uuid NOT NULL, user_id uuid NOT NULL, device_id uuid NOT NULL,
    n_pipelines int NOT NULL, n_leads int NOT NULL, n_contacts int NOT NULL, n_tags int NOT NULL, n_chats int NOT NULL,
    n_messages int NOT NULL, n_events int NOT NULL, n_parts int NOT NULL, n_interactions int NOT NULL
) ON COMMIT DROP;
-- The bulk load's undo list: the DDL that puts back what bench_bulk_begin dropped (run by bench_bulk_index).
CREATE TEMP TABLE bench_ddl (n serial, tbl regclass NOT NULL, ord int NOT NULL, ddl text NOT NULL) ON COMMIT DROP;

-- Bulk load, the pg_restore way: no per-row trigger (foreign-key checks included: the data is consistent by
-- construction) and no index maintenance while millions of rows go in; the indexes are built afterwards, sorted,
-- with parallel workers. Every definition is read from the catalog at run time (pg_get_indexdef,
-- pg_get_constraintdef), so indexes a later migration adds are dropped and rebuilt as well.
-- $1 every table the seed writes, $2 the big ones. Returns the number of indexes dropped.
CREATE OR REPLACE FUNCTION pg_temp.bench_bulk_begin(seeded regclass[], bulk regclass[]) RETURNS int
    LANGUAGE plpgsql AS $$
DECLARE
    r record;
    fk record;
    dropped int := 0;
BEGIN
    -- Triggers skipped here must be reproduced by the seed: the counters by bench_account_counters, lead_tags'
    -- lead_created_at (lead_tags_lead_key, 0013) by bench_lead_tags itself; leads_created_at_tags fires on updates
    -- of leads.created_at only, which the seed never does. Refuse any trigger this seed does not know.
    FOR r IN SELECT tgrelid::regclass AS tbl, tgname FROM pg_trigger
             WHERE tgrelid = ANY (seeded) AND NOT tgisinternal AND tgenabled <> 'D'
               AND tgname NOT IN ('account_counters_ins', 'account_counters_del', 'account_counters_upd',
                                  'account_counters_trunc', 'lead_tags_lead_key', 'leads_created_at_tags',
                                  -- chats.contact_search (0014): bench_chat_contact_search
                                  'contacts_chat_search_ins', 'contacts_chat_search_upd', 'contacts_chat_search_del',
                                  'chats_contact_search_ins', 'chats_contact_search_upd',
                                  -- devices.paired_at (0016) fires on updates of devices.jid only, which the seed
                                  -- never does; bench_devices writes paired_at itself
                                  'devices_paired_at') LOOP
        RAISE EXCEPTION 'bench-seed: trigger % on % is not reproduced by bench_account_counters', r.tgname, r.tbl;
    END LOOP;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        -- Until commit: no trigger fires (user triggers and the foreign keys' RI triggers alike).
        PERFORM set_config('session_replication_role', 'replica', true);
    ELSE
        -- Not a superuser: the owner can switch off the user triggers (the foreign keys stay checked).
        FOR r IN SELECT t FROM unnest(seeded) AS t LOOP
            EXECUTE format('ALTER TABLE %s DISABLE TRIGGER USER', r.t);
            INSERT INTO bench_ddl (tbl, ord, ddl) VALUES (r.t, 9, format('ALTER TABLE %s ENABLE TRIGGER USER', r.t));
        END LOOP;
    END IF;
    -- Every index of a bulk table goes, except those a foreign key between bulk tables relies on (dropping one
    -- would mean re-validating that key over millions of rows). Foreign keys of other tables that rely on a
    -- dropped index go with it and come back after it (they validate against the few rows those tables hold).
    FOR r IN SELECT i.indexrelid::regclass AS idx, i.indrelid::regclass AS tbl, c.conname, c.oid AS con
             FROM pg_index i
             LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                                      AND c.contype IN ('p', 'u', 'x')
             WHERE i.indrelid = ANY (bulk)
               AND NOT EXISTS (SELECT 1 FROM pg_constraint f
                               WHERE f.contype = 'f' AND f.conindid = i.indexrelid AND f.conrelid = ANY (bulk))
             ORDER BY i.indrelid, i.indexrelid LOOP
        FOR fk IN SELECT f.oid, f.conrelid::regclass AS tbl, f.conname FROM pg_constraint f
                  WHERE f.contype = 'f' AND f.conindid = r.idx ORDER BY f.oid LOOP
            INSERT INTO bench_ddl (tbl, ord, ddl)
            VALUES (r.tbl, 3, format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.tbl, fk.conname,
                                     pg_get_constraintdef(fk.oid)));
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tbl, fk.conname);
        END LOOP;
        IF r.con IS NOT NULL THEN  -- primary key, unique or exclusion constraint: rebuilt as that constraint
            INSERT INTO bench_ddl (tbl, ord, ddl)
            VALUES (r.tbl, 1, format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.tbl, r.conname,
                                     pg_get_constraintdef(r.con)));
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
        ELSE
            INSERT INTO bench_ddl (tbl, ord, ddl) VALUES (r.tbl, 2, pg_get_indexdef(r.idx));
            EXECUTE format('DROP INDEX %s', r.idx);
        END IF;
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;

-- Put back what bench_bulk_begin took from table t (NULL: from every table left): its constraints, its other
-- indexes, the foreign keys of other tables that rely on them, its triggers. Returns the number of statements run.
CREATE OR REPLACE FUNCTION pg_temp.bench_bulk_index(t regclass) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    r record;
    done int := 0;
BEGIN
    FOR r IN SELECT ddl FROM bench_ddl WHERE t IS NULL OR tbl = t ORDER BY tbl, ord, n LOOP
        EXECUTE r.ddl;
        done := done + 1;
    END LOOP;
    DELETE FROM bench_ddl WHERE t IS NULL OR tbl = t;
    RETURN done;
END
$$;

-- name: bench_plan_create
-- $1 seed, $2 accounts, $3 anchor, then large-account sizes $4..$11, small-account sizes $12..$19:
-- leads, contacts, tags, chats, messages, events, participants per event, interactions.
INSERT INTO bench_plan (a, seed, anchor, account_id, user_id, device_id, n_pipelines, n_leads, n_contacts, n_tags,
                        n_chats, n_messages, n_events, n_parts, n_interactions)
SELECT a, $1::int, $3::timestamptz,
       pg_temp.bid($1::int, 'acct', a, 0), pg_temp.bid($1::int, 'user', a, 0), pg_temp.bid($1::int, 'device', a, 0),
       CASE WHEN a = 0 THEN 2 ELSE 1 END,
       CASE WHEN a = 0 THEN $4::int ELSE $12::int END,
       CASE WHEN a = 0 THEN $5::int ELSE $13::int END,
       CASE WHEN a = 0 THEN $6::int ELSE $14::int END,
       CASE WHEN a = 0 THEN $7::int ELSE $15::int END,
       CASE WHEN a = 0 THEN $8::int ELSE $16::int END,
       CASE WHEN a = 0 THEN $9::int ELSE $17::int END,
       CASE WHEN a = 0 THEN $10::int ELSE $18::int END,
       CASE WHEN a = 0 THEN $11::int ELSE $19::int END
FROM generate_series(0, $2::int - 1) AS a

-- name: bench_seeded_leads
-- How many leads the large account of this seed already has (0 = not seeded).
SELECT count(*) AS n FROM leads WHERE account_id = md5($1::int::text || ':acct:0:0')::uuid

-- name: bench_delete_accounts
-- --force: drop every account of this seed (everything else cascades), and the super admin.
WITH d AS (
    DELETE FROM accounts WHERE id IN (SELECT md5($1::int::text || ':acct:' || a::text || ':0')::uuid
                                      FROM generate_series(0, $2::int - 1) a)
    RETURNING 1
)
SELECT count(*) AS n FROM d

-- name: bench_accounts
INSERT INTO accounts (id, name, plan, max_devices, created_at, updated_at, is_active, slug)
SELECT account_id,
       CASE WHEN a = 0 THEN 'Bench Large' ELSE 'Bench Tenant ' || lpad(a::text, 2, '0') END,
       CASE WHEN a = 0 THEN 'enterprise' ELSE 'pro' END, 200,
       anchor - interval '800 days', anchor - interval '800 days', true,
       CASE WHEN a = 0 THEN 'bench-large' ELSE 'bench-' || lpad(a::text, 2, '0') END
FROM bench_plan

-- name: bench_users
-- One admin per account (bench_large, bench_t01 … bench_tNN) and the super admin bench_admin (home: account 1,
-- or 0 with a single account). $1 = the bcrypt hash shared by all of them.
INSERT INTO users (id, account_id, username, email, password_hash, display_name, is_admin, is_active, created_at,
                   updated_at, is_super_admin, role)
SELECT user_id, account_id,
       CASE WHEN a = 0 THEN 'bench_large' ELSE 'bench_t' || lpad(a::text, 2, '0') END,
       CASE WHEN a = 0 THEN 'bench_large' ELSE 'bench_t' || lpad(a::text, 2, '0') END || '@bench.local',
       $1::text, 'Bench User ' || a, true, true, anchor - interval '800 days', anchor - interval '800 days',
       false, 'admin'
FROM bench_plan
UNION ALL
SELECT pg_temp.bid(seed, 'user', -1, 0), account_id, 'bench_admin', 'bench_admin@bench.local', $1::text,
       'Bench Super Admin', true, true, anchor - interval '800 days', anchor - interval '800 days', true, 'super_admin'
FROM bench_plan WHERE a = (SELECT least(1, max(a)) FROM bench_plan)

-- name: bench_memberships
INSERT INTO user_accounts (user_id, account_id, role, is_default)
SELECT user_id, account_id, 'admin', true FROM bench_plan
UNION ALL
SELECT pg_temp.bid(seed, 'user', -1, 0), account_id, 'super_admin', true
FROM bench_plan WHERE a = (SELECT least(1, max(a)) FROM bench_plan)

-- name: bench_devices
INSERT INTO devices (id, account_id, name, phone, jid, status, created_at, updated_at, paired_at)
SELECT device_id, account_id, 'Bench phone', '51900000' || lpad(a::text, 3, '0'),
       '51900000' || lpad(a::text, 3, '0') || '@s.whatsapp.net', 'disconnected',
       anchor - interval '700 days', anchor - interval '700 days', anchor - interval '700 days'
FROM bench_plan

-- name: bench_pipelines
INSERT INTO pipelines (id, account_id, name, description, is_default, created_at, updated_at)
SELECT pg_temp.hid(seed, 'pipe', a, p), account_id,
       CASE WHEN p = 0 THEN 'Pipeline Principal' ELSE 'Postventa' END,
       CASE WHEN p = 0 THEN 'Pipeline por defecto para leads' ELSE 'Clientes activos' END,
       p = 0, anchor - interval '800 days' + p * interval '1 day', anchor - interval '800 days'
FROM bench_plan, generate_series(0, n_pipelines - 1) AS p

-- name: bench_stages
INSERT INTO pipeline_stages (id, pipeline_id, name, color, position, created_at, updated_at)
SELECT pg_temp.hid(seed, 'stage', a, p * 10 + s), pg_temp.hid(seed, 'pipe', a, p),
       (CASE WHEN p = 0
             THEN '{Nuevo,Contactado,En Negociación,Propuesta,Cerrado,Perdido}'::text[]
             ELSE '{Onboarding,Activo,Renovación,Upsell,Riesgo,Baja}'::text[] END)[s + 1],
       ('{#6366f1,#f59e0b,#3b82f6,#8b5cf6,#10b981,#ef4444}'::text[])[s + 1], s,
       anchor - interval '800 days', anchor - interval '800 days'
FROM bench_plan, generate_series(0, n_pipelines - 1) AS p, generate_series(0, 5) AS s

-- name: bench_tags
INSERT INTO tags (id, account_id, name, color, created_at, updated_at)
SELECT pg_temp.hid(seed, 'tag', a, t), account_id,
       ('{VIP,Frío,Caliente,Referido,Web,Facebook,Instagram,Feria,Recompra,Mayorista}'::text[])[1 + t % 10]
           || ' ' || (t / 10 + 1),
       ('{#6366f1,#f59e0b,#3b82f6,#8b5cf6,#10b981,#ef4444,#14b8a6,#f97316}'::text[])[1 + t % 8],
       anchor - interval '600 days', anchor - interval '600 days'
FROM bench_plan, generate_series(0, n_tags - 1) AS t

-- name: bench_contacts
-- Contact i of an account: jid = phone(i)@s.whatsapp.net. Display-name sources vary like real address books.
INSERT INTO contacts (id, account_id, device_id, jid, phone, name, push_name, is_group, created_at, updated_at,
                      custom_name, email, company, source, last_name, age)
SELECT pg_temp.hid(seed, 'contact', a, i), account_id, device_id,
       pg_temp.phone(seed, i) || '@s.whatsapp.net', pg_temp.phone(seed, i),
       CASE WHEN pg_temp.h(seed, 1, a, i) % 10 < 7 THEN pg_temp.first_name(pg_temp.h(seed, 2, a, i)) END,
       pg_temp.first_name(pg_temp.h(seed, 3, a, i)),
       false,
       anchor - (pg_temp.h(seed, 4, a, i) % (700 * 86400)) * interval '1 second',
       anchor - (pg_temp.h(seed, 5, a, i) % (30 * 86400)) * interval '1 second',
       CASE WHEN pg_temp.h(seed, 6, a, i) % 10 < 3
            THEN pg_temp.first_name(pg_temp.h(seed, 2, a, i)) || ' ' || pg_temp.last_name(pg_temp.h(seed, 7, a, i)) END,
       CASE WHEN pg_temp.h(seed, 8, a, i) % 10 < 4
            THEN lower(pg_temp.first_name(pg_temp.h(seed, 2, a, i))) || '.' || i || '@example.com' END,
       CASE WHEN pg_temp.h(seed, 9, a, i) % 10 < 3 THEN pg_temp.company(pg_temp.h(seed, 10, a, i)) END,
       'whatsapp',
       CASE WHEN pg_temp.h(seed, 11, a, i) % 10 < 5 THEN pg_temp.last_name(pg_temp.h(seed, 7, a, i)) END,
       CASE WHEN pg_temp.h(seed, 12, a, i) % 10 < 2 THEN 18 + (pg_temp.h(seed, 13, a, i) % 60)::int END
FROM bench_plan, generate_series(0, n_contacts - 1) AS i

-- name: bench_contact_tags
-- Half of the contacts carry one tag.
INSERT INTO contact_tags (contact_id, tag_id)
SELECT pg_temp.hid(seed, 'contact', a, i), pg_temp.hid(seed, 'tag', a, t)
FROM bench_plan, generate_series(0, n_contacts - 1) AS i,
     LATERAL (SELECT pg_temp.h(seed, 20, a, i) % n_tags AS t OFFSET 0) AS tt
WHERE n_tags > 0 AND pg_temp.h(seed, 21, a, i) % 2 = 0

-- name: bench_leads
-- Lead i < n_contacts is the lead of contact i (same jid, linked); the rest have their own numbers.
-- 70 % in the default pipeline; stages skewed towards the first ones; half assigned to the account's user.
INSERT INTO leads (id, account_id, contact_id, jid, name, phone, email, status, source, notes, custom_fields,
                   assigned_to, created_at, updated_at, last_name, company, age, pipeline_id, stage_id)
SELECT pg_temp.hid(seed, 'lead', a, i), account_id,
       CASE WHEN i < n_contacts THEN pg_temp.hid(seed, 'contact', a, i) END,
       pg_temp.phone(seed, i) || '@s.whatsapp.net',
       pg_temp.first_name(pg_temp.h(seed, 2, a, i)),
       pg_temp.phone(seed, i),
       CASE WHEN pg_temp.h(seed, 8, a, i) % 10 < 6
            THEN lower(pg_temp.first_name(pg_temp.h(seed, 2, a, i))) || '.' || i || '@example.com' ELSE '' END,
       ('{new,contacted,qualified,won,lost}'::text[])[1 + pg_temp.h(seed, 30, a, i) % 5],
       ('{whatsapp,facebook,instagram,web,referido,kommo}'::text[])[1 + pg_temp.h(seed, 31, a, i) % 6],
       CASE WHEN pg_temp.h(seed, 32, a, i) % 10 < 2 THEN pg_temp.phrase(pg_temp.h(seed, 33, a, i)) ELSE '' END,
       CASE WHEN pg_temp.h(seed, 34, a, i) % 10 < 2
            THEN jsonb_build_object('presupuesto', pg_temp.h(seed, 35, a, i) % 10000, 'ciudad', 'Lima')
            ELSE '{}'::jsonb END,
       CASE WHEN pg_temp.h(seed, 36, a, i) % 2 = 0 THEN user_id END,
       anchor - (pg_temp.h(seed, 37, a, i) % (730 * 86400)) * interval '1 second',
       anchor - (pg_temp.h(seed, 38, a, i) % (60 * 86400)) * interval '1 second',
       CASE WHEN pg_temp.h(seed, 11, a, i) % 10 < 6 THEN pg_temp.last_name(pg_temp.h(seed, 7, a, i)) END,
       CASE WHEN pg_temp.h(seed, 9, a, i) % 10 < 3 THEN pg_temp.company(pg_temp.h(seed, 10, a, i)) END,
       CASE WHEN pg_temp.h(seed, 12, a, i) % 10 < 2 THEN 18 + (pg_temp.h(seed, 13, a, i) % 60)::int END,
       pg_temp.hid(seed, 'pipe', a, pipe), pg_temp.hid(seed, 'stage', a, pipe * 10 + stage)
FROM bench_plan, generate_series(0, n_leads - 1) AS i,
     LATERAL (SELECT CASE WHEN n_pipelines > 1 AND pg_temp.h(seed, 39, a, i) % 10 >= 7 THEN 1 ELSE 0 END AS pipe,
                     CASE WHEN x < 30 THEN 0 WHEN x < 55 THEN 1 WHEN x < 70 THEN 2 WHEN x < 82 THEN 3
                          WHEN x < 92 THEN 4 ELSE 5 END AS stage
              FROM (SELECT pg_temp.h(seed, 40, a, i) % 100 AS x) AS r OFFSET 0) AS ps

-- name: bench_lead_tags
-- 2–4 distinct tags per lead (mean 3): (base + k * step) mod n_tags, step < n_tags / 4.
-- lead_created_at: what lead_tags_lead_key (off during the load) would read from the lead, i.e. bench_leads'
-- created_at expression, repeated verbatim (tests/test_lead_tags_key.py checks they agree).
INSERT INTO lead_tags (lead_id, tag_id, lead_created_at)
SELECT pg_temp.hid(seed, 'lead', a, i), pg_temp.hid(seed, 'tag', a, t),
       anchor - (pg_temp.h(seed, 37, a, i) % (730 * 86400)) * interval '1 second'
FROM bench_plan, generate_series(0, n_leads - 1) AS i, generate_series(0, 3) AS k,
     LATERAL (SELECT (pg_temp.h(seed, 41, a, i) % n_tags
                      + k * (1 + pg_temp.h(seed, 42, a, i) % greatest(1, n_tags / 4 - 1))) % n_tags AS t OFFSET 0) AS tt
WHERE n_tags >= 8 AND k < 2 + pg_temp.h(seed, 43, a, i) % 3

-- name: bench_chats
-- Chat c is the conversation with contact c. last_message/last_message_at are filled after the messages.
INSERT INTO chats (id, account_id, device_id, contact_id, jid, name, unread_count, is_archived, is_pinned,
                   created_at, updated_at)
SELECT pg_temp.hid(seed, 'chat', a, c), account_id, device_id, pg_temp.hid(seed, 'contact', a, c),
       pg_temp.phone(seed, c) || '@s.whatsapp.net',
       COALESCE(CASE WHEN pg_temp.h(seed, 6, a, c) % 10 < 3
                     THEN pg_temp.first_name(pg_temp.h(seed, 2, a, c)) || ' ' || pg_temp.last_name(pg_temp.h(seed, 7, a, c)) END,
                pg_temp.first_name(pg_temp.h(seed, 3, a, c))),
       CASE WHEN pg_temp.h(seed, 50, a, c) % 10 < 2 THEN (1 + pg_temp.h(seed, 51, a, c) % 9)::int ELSE 0 END,
       pg_temp.h(seed, 52, a, c) % 20 = 0,
       pg_temp.h(seed, 53, a, c) % 100 = 0,
       anchor - interval '400 days', anchor
FROM bench_plan, generate_series(0, least(n_chats, n_contacts) - 1) AS c

-- name: bench_messages
-- Message m goes to chat floor(n_chats * u^2): skewed, chat 0 is the busiest (≈ n/sqrt(n_chats) messages).
-- $1 = first account index, $2 = last (inclusive): the caller loads the table in a few statements.
INSERT INTO messages (id, account_id, device_id, chat_id, message_id, from_jid, from_name, body, message_type,
                      media_url, media_mimetype, media_size, is_from_me, is_read, status, "timestamp", created_at)
SELECT pg_temp.hid(seed, 'msg', a, m), account_id, device_id, pg_temp.hid(seed, 'chat', a, c),
       'BENCH' || upper(to_hex(a)) || 'X' || upper(to_hex(m)),
       CASE WHEN mine THEN '51900000' || lpad(a::text, 3, '0') || '@s.whatsapp.net'
            ELSE pg_temp.phone(seed, c) || '@s.whatsapp.net' END,
       CASE WHEN mine THEN 'Me' ELSE pg_temp.first_name(pg_temp.h(seed, 3, a, c)) END,
       CASE WHEN kind = 'text' THEN pg_temp.phrase(pg_temp.h(seed, 60, a, m)) ELSE '' END,
       kind,
       CASE WHEN kind <> 'text' THEN '/api/media/file/' || account_id || '/bench/' || m || '.bin' END,
       CASE kind WHEN 'image' THEN 'image/jpeg' WHEN 'audio' THEN 'audio/ogg' WHEN 'document' THEN 'application/pdf'
                 WHEN 'sticker' THEN 'image/webp' END,
       CASE WHEN kind <> 'text' THEN 1000 + pg_temp.h(seed, 61, a, m) % 900000 END,
       mine, pg_temp.h(seed, 62, a, m) % 10 < 9,
       CASE WHEN mine THEN ('{sent,delivered,read}'::text[])[1 + pg_temp.h(seed, 63, a, m) % 3] ELSE 'received' END,
       ts, ts
FROM bench_plan, generate_series(0, n_messages - 1) AS m,
     LATERAL (SELECT least(least(n_chats, n_contacts) - 1,
                           floor(least(n_chats, n_contacts) * pg_temp.u(seed, 64, a, m) ^ 2)::int) AS c,
                     pg_temp.h(seed, 65, a, m) % 10 < 4 AS mine,
                     CASE WHEN x < 90 THEN 'text' WHEN x < 95 THEN 'image' WHEN x < 97 THEN 'audio'
                          WHEN x < 99 THEN 'document' ELSE 'sticker' END AS kind,
                     anchor - (pg_temp.h(seed, 67, a, m) % (180 * 86400)) * interval '1 second' AS ts
              FROM (SELECT pg_temp.h(seed, 66, a, m) % 100 AS x) AS r OFFSET 0) AS mm
WHERE a BETWEEN $1::int AND $2::int AND least(n_chats, n_contacts) > 0

-- name: bench_chat_last_message
-- Each chat's newest message, one probe of idx_messages_chat_ts per chat (rebuilt just before this step).
WITH lm AS (
    SELECT ch.id, l.body, l.message_type, l."timestamp"
    FROM bench_plan p
    JOIN chats ch ON ch.account_id = p.account_id
    CROSS JOIN LATERAL (SELECT m.body, m.message_type, m."timestamp" FROM messages m
                        WHERE m.chat_id = ch.id ORDER BY m."timestamp" DESC, m.id DESC LIMIT 1) l
)
UPDATE chats ch
SET last_message = CASE WHEN lm.body = '' THEN '[' || lm.message_type || ']' ELSE lm.body END,
    last_message_at = lm."timestamp"
FROM lm
WHERE ch.id = lm.id

-- name: bench_chat_contact_search
-- What the chats_contact_search_ins trigger of 0014/0018 would have written with triggers on: each chat of the seed's
-- accounts gets its contact's (same account + JID) search text, NULL without one. One hash join, before the chats'
-- and contacts' indexes are rebuilt.
UPDATE chats ch
SET contact_search = contact_search_text(k.name, k.last_name, k.short_name, k.custom_name, k.push_name, k.phone,
                                         k.jid, k.email, k.company),
    contact_phone = k.phone, contact_avatar_url = k.avatar_url, contact_custom_name = k.custom_name,
    contact_name = k.name  -- 0018's contact card, kept by the same triggers
FROM contacts k
WHERE k.account_id = ch.account_id AND k.jid = ch.jid
  AND ch.account_id IN (SELECT account_id FROM bench_plan)

-- name: bench_events
INSERT INTO events (id, account_id, name, description, event_date, event_end, location, status, color, created_by,
                    created_at, updated_at)
SELECT pg_temp.hid(seed, 'event', a, e), account_id,
       ('{Feria,Webinar,Open Day,Taller,Lanzamiento,Demo,Charla,Congreso}'::text[])[1 + e % 8] || ' ' || (e + 1),
       'Evento de prueba ' || (e + 1),
       anchor + ((pg_temp.h(seed, 70, a, e) % (360 * 86400)) - 180 * 86400) * interval '1 second',
       NULL, ('{Lima,Arequipa,Cusco,Trujillo,Online}'::text[])[1 + e % 5],
       ('{active,active,active,completed,cancelled}'::text[])[1 + pg_temp.h(seed, 71, a, e) % 5],
       ('{#3b82f6,#10b981,#f59e0b,#ef4444}'::text[])[1 + e % 4], user_id,
       anchor - interval '400 days', anchor - interval '10 days'
FROM bench_plan, generate_series(0, n_events - 1) AS e

-- name: bench_participants
-- Participant j of event e is contact (e * n_parts + j) mod n_contacts (unique within the event); 70 % linked.
INSERT INTO event_participants (id, event_id, contact_id, name, last_name, phone, email, status, notes, next_action,
                                next_action_date, invited_at, created_at, updated_at)
SELECT pg_temp.hid(seed, 'part', a, e * n_parts + j), pg_temp.hid(seed, 'event', a, e),
       CASE WHEN pg_temp.h(seed, 72, a, e * n_parts + j) % 10 < 7 THEN pg_temp.hid(seed, 'contact', a, k) END,
       pg_temp.first_name(pg_temp.h(seed, 2, a, k)), pg_temp.last_name(pg_temp.h(seed, 7, a, k)),
       pg_temp.phone(seed, k), NULL,
       ('{invited,confirmed,attended,declined,pending}'::text[])[1 + pg_temp.h(seed, 73, a, e * n_parts + j) % 5],
       NULL,
       CASE WHEN pg_temp.h(seed, 74, a, e * n_parts + j) % 10 = 0 THEN 'Llamar para confirmar' END,
       CASE WHEN pg_temp.h(seed, 74, a, e * n_parts + j) % 10 = 0
            THEN anchor + (pg_temp.h(seed, 75, a, e * n_parts + j) % (30 * 86400)) * interval '1 second' END,
       anchor - interval '30 days', anchor - interval '30 days', anchor - interval '5 days'
FROM bench_plan, generate_series(0, n_events - 1) AS e, generate_series(0, n_parts - 1) AS j,
     LATERAL (SELECT ((e::bigint * n_parts + j) % greatest(1, n_contacts)) AS k) AS kk
WHERE n_contacts >= n_parts

-- name: bench_interactions
INSERT INTO interactions (id, account_id, contact_id, event_id, participant_id, type, direction, outcome, notes,
                          next_action, next_action_date, created_by, created_at, lead_id)
SELECT pg_temp.hid(seed, 'inter', a, x), account_id,
       CASE WHEN n_contacts > 0 THEN pg_temp.hid(seed, 'contact', a, ci) END,
       CASE WHEN ev THEN pg_temp.hid(seed, 'event', a, ei) END,
       CASE WHEN ev THEN pg_temp.hid(seed, 'part', a, pi) END,
       ('{call,whatsapp,email,meeting,note}'::text[])[1 + pg_temp.h(seed, 83, a, x) % 5],
       ('{inbound,outbound}'::text[])[1 + pg_temp.h(seed, 84, a, x) % 2],
       ('{interested,no_answer,callback,not_interested,sold}'::text[])[1 + pg_temp.h(seed, 85, a, x) % 5],
       pg_temp.phrase(pg_temp.h(seed, 86, a, x)),
       NULL, NULL, user_id,
       anchor - (pg_temp.h(seed, 87, a, x) % (365 * 86400)) * interval '1 second',
       CASE WHEN n_contacts > 0 AND ci < n_leads THEN pg_temp.hid(seed, 'lead', a, ci) END
FROM bench_plan, generate_series(0, n_interactions - 1) AS x,
     LATERAL (SELECT pg_temp.h(seed, 80, a, x) % greatest(1, n_contacts) AS ci,
                     n_events > 0 AND n_contacts >= n_parts AND n_parts > 0 AND pg_temp.h(seed, 81, a, x) % 10 = 0 AS ev,
                     pg_temp.h(seed, 88, a, x) % greatest(1, n_events) AS ei,
                     pg_temp.h(seed, 88, a, x) % greatest(1, n_events) * n_parts
                         + pg_temp.h(seed, 82, a, x) % greatest(1, n_parts) AS pi
              OFFSET 0) AS r

-- name: bench_bulk_begin
-- $1 every table the seed writes, $2 the bulk tables (see pg_temp.bench_bulk_begin).
SELECT pg_temp.bench_bulk_begin($1::text[]::regclass[], $2::text[]::regclass[]) AS dropped

-- name: bench_bulk_index
-- $1 a bulk table (NULL: whatever is left).
SELECT pg_temp.bench_bulk_index($1::text::regclass) AS done

-- name: bench_account_counters
-- What the account_counters_ins statement triggers of 0009 would have added for the rows inserted with triggers
-- off: the seed's accounts are new, so that is every row of theirs. Same predicates as the trigger functions,
-- in the backfill's slot 0 (reads sum the slots).
INSERT INTO account_counters (account_id, slot, leads, contacts, group_contacts, inbox_chats)
SELECT p.account_id, 0, coalesce(l.n, 0), coalesce(k.n, 0), coalesce(k.g, 0), coalesce(c.n, 0)
FROM bench_plan p
LEFT JOIN (SELECT account_id, count(*) AS n FROM leads
           WHERE account_id IN (SELECT account_id FROM bench_plan) GROUP BY account_id) l USING (account_id)
LEFT JOIN (SELECT account_id, count(*) AS n, count(*) FILTER (WHERE is_group) AS g FROM contacts
           WHERE account_id IN (SELECT account_id FROM bench_plan) GROUP BY account_id) k USING (account_id)
LEFT JOIN (SELECT account_id, count(*) AS n FROM chats
           WHERE account_id IN (SELECT account_id FROM bench_plan) AND inbox_chat(is_archived, jid)
           GROUP BY account_id) c USING (account_id)
WHERE l.n IS NOT NULL OR k.n IS NOT NULL OR c.n IS NOT NULL
ORDER BY p.account_id

-- name: bench_counts
-- The row counts of this seed's accounts ($1 seed, $2 accounts), after commit and VACUUM (index-only scans).
WITH acc AS MATERIALIZED (
    SELECT md5($1::int::text || ':acct:' || a::text || ':0')::uuid AS account_id FROM generate_series(0, $2::int - 1) a
)
SELECT (SELECT count(*) FROM accounts WHERE id IN (SELECT account_id FROM acc)) AS accounts,
       (SELECT count(*) FROM users WHERE account_id IN (SELECT account_id FROM acc)) AS users,
       (SELECT count(*) FROM pipelines WHERE account_id IN (SELECT account_id FROM acc)) AS pipelines,
       (SELECT count(*) FROM pipeline_stages ps JOIN pipelines p ON p.id = ps.pipeline_id
         WHERE p.account_id IN (SELECT account_id FROM acc)) AS stages,
       (SELECT count(*) FROM tags WHERE account_id IN (SELECT account_id FROM acc)) AS tags,
       (SELECT count(*) FROM contacts WHERE account_id IN (SELECT account_id FROM acc)) AS contacts,
       (SELECT count(*) FROM leads WHERE account_id IN (SELECT account_id FROM acc)) AS leads,
       (SELECT count(*) FROM lead_tags lt JOIN leads l ON l.id = lt.lead_id
         WHERE l.account_id IN (SELECT account_id FROM acc)) AS lead_tags,
       (SELECT count(*) FROM chats WHERE account_id IN (SELECT account_id FROM acc)) AS chats,
       (SELECT count(*) FROM messages WHERE account_id IN (SELECT account_id FROM acc)) AS messages,
       (SELECT count(*) FROM events WHERE account_id IN (SELECT account_id FROM acc)) AS events,
       (SELECT count(*) FROM event_participants ep JOIN events e ON e.id = ep.event_id
         WHERE e.account_id IN (SELECT account_id FROM acc)) AS participants,
       (SELECT count(*) FROM interactions WHERE account_id IN (SELECT account_id FROM acc)) AS interactions
