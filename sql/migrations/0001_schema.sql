-- =====================================================================================================================
-- 0001_schema.sql — Clarin CRM, full schema in final form (PostgreSQL 15 / 16).
--
-- Replaces the 117 incremental statements of the Go original (shared/spec/schema.md §0.1) with one migration.
-- Same tables (29), same column names and types, same constraint/index names where schema.md gives them, same FK
-- actions (CASCADE / SET NULL). The runner applies this file once, inside one transaction: no CONCURRENTLY, no
-- schema_migrations here, no data statements (M77/M82 boot-time data fixes and the seed belong to application code).
--
-- Deviations from the original (schema.md §7 "Better" and §8 smells):
--   * Non-null reads (§8.6): columns that Go scans into non-pointer types are NOT NULL with their defaults
--     (accounts.plan/max_devices/is_active/slug(''), users.display_name('')/role('admin')/is_admin/is_active/
--     is_super_admin, devices.status, contacts.is_group, chats.unread_count/is_archived/is_pinned,
--     messages.message_type/is_from_me/is_read/status, pipelines.is_default, pipeline_stages.color/position,
--     tags.color, campaigns.status/total_recipients/sent_count/failed_count/settings, campaign_recipients.status,
--     campaign_attachments.caption/file_name/file_size, events.status/color, event_participants.status,
--     user_accounts.role/is_default, message_reactions.is_from_me, poll_options.vote_count,
--     kommo_connected_pipelines.enabled, every created_at/updated_at/synced_at/entered_at).
--     Optional text/json fields the API treats as optional stay nullable (leads.status, leads.custom_fields,
--     contacts.source, campaign_recipients.metadata, messages.poll_max_selections, ...).
--   * updated_at (§8.7) added to pipeline_stages, user_accounts, campaign_recipients, message_reactions,
--     poll_options, poll_votes, kommo_connected_pipelines. Still maintained by application code (no triggers).
--   * Stable order (§8.8): poll_options.position (0-based option order, index (message_id, position));
--     campaign_recipients.seq bigint identity = send order, partial index (campaign_id, seq) WHERE status='pending'.
--   * campaign_recipients: UNIQUE campaign_recipients_campaign_id_jid_key (campaign_id, jid) — recipients dedupe by JID
--     (ON CONFLICT (campaign_id, jid) DO NOTHING now works).
--   * messages dedup (§8.9): UNIQUE messages_account_id_chat_id_message_id_key (account_id, chat_id, message_id)
--     instead of (account_id, device_id, message_id): the same stanza seen by two devices is stored once, and dedup
--     survives device deletion. It also serves the poll / forward lookup "(chat_id, stanza id)" when the query also
--     filters account_id (which tenant isolation requires anyway).
--   * messages paging: idx_messages_chat_ts (chat_id, "timestamp" DESC, id DESC) for keyset pages; the global
--     idx_messages_timestamp and the bare idx_messages_chat are gone (covered).
--   * pipeline_stages.kommo_id (§8.4) is unique per pipeline, not globally: idx_pipeline_stages_kommo_id
--     (pipeline_id, kommo_id) WHERE kommo_id IS NOT NULL. Kommo stage lookups must use (pipeline_id, kommo_id).
--   * pipelines (§8.5): at most one default per account, idx_pipelines_one_default (account_id) WHERE is_default.
--     Code that sets a new default (Kommo is_main, admin) must first clear the old one in the same transaction.
--   * Missing FK indexes (§7) added, so SET NULL / CASCADE on device, contact, user, stage, pipeline, event deletes no
--     longer scan: devices→contacts/chats/messages/campaigns, contacts→leads/chats/campaign_recipients/
--     event_participants/interactions, users→leads/events/interactions, pipeline_stages.pipeline_id, leads.stage_id,
--     leads.pipeline_id, campaigns.event_id, kommo_connected_pipelines.pipeline_id, lead_stages.stage_id,
--     all four tag junctions (tag_id, <entity>_id).
--   * Hot-path indexes (§7): chats inbox + last_message_at, leads board (account_id, created_at DESC, id DESC),
--     contacts display-name order + per-tenant phone duplicates, interactions timelines, upcoming actions,
--     events order, campaigns list + worker, recent stickers.
--   * Trigram search (§8.12): pg_trgm + one GIN expression index per searched table (leads, contacts, chats).
--     The expressions are spelled out below; queries must repeat them VERBATIM to use the index.
--   * Redundant / low-value indexes (§7) are not created: idx_contacts_account, idx_chats_account, idx_leads_account,
--     idx_tags_account, idx_user_accounts_user, idx_contact_device_names_contact, idx_poll_votes_message,
--     idx_message_reactions_chat, idx_message_reactions_target, idx_kommo_connected_pipelines_account,
--     idx_contacts_phone, idx_contacts_name, idx_leads_status, idx_messages_timestamp, idx_messages_chat,
--     idx_campaign_recipients_campaign, idx_campaign_recipients_status, idx_campaigns_account, idx_campaigns_status,
--     idx_events_account, idx_events_status, idx_events_date, idx_event_participants_status, idx_interactions_created
--     (each replaced by a tenant-/parent-prefixed composite or covered by a unique key).
--   * Extra columns: users.token_version (JWT revocation), accounts.timezone (campaign active hours).
--
-- TRIGRAM SEARCH EXPRESSIONS (repeat exactly, e.g. `WHERE <expr> ILIKE '%' || $2 || '%'` with %,_,\ escaped):
--   leads    (alias-free form; with an alias prefix every column, e.g. l.name):
--     (coalesce(name,'') || ' ' || coalesce(last_name,'') || ' ' || coalesce(phone,'') || ' ' || coalesce(email,'') || ' ' || coalesce(company,'') || ' ' || jid)
--   contacts:
--     (coalesce(name,'') || ' ' || coalesce(last_name,'') || ' ' || coalesce(short_name,'') || ' ' || coalesce(custom_name,'') || ' ' || coalesce(push_name,'') || ' ' || coalesce(phone,'') || ' ' || jid || ' ' || coalesce(email,'') || ' ' || coalesce(company,''))
--   chats:
--     (coalesce(name,'') || ' ' || jid)
-- =====================================================================================================================

-- pg_trgm and the trigram indexes are in 0002_search_trigram.sql: optional where the extension is missing.

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.1 accounts — the tenant
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE accounts (
    id          uuid         NOT NULL DEFAULT gen_random_uuid(),
    name        varchar(255) NOT NULL,
    plan        varchar(50)  NOT NULL DEFAULT 'free',
    max_devices integer      NOT NULL DEFAULT 5,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    is_active   boolean      NOT NULL DEFAULT true,
    slug        varchar(255) NOT NULL DEFAULT '',
    timezone    text         NOT NULL DEFAULT 'America/Lima',
    CONSTRAINT accounts_pkey PRIMARY KEY (id)
);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.2 users
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE users (
    id             uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id     uuid         NOT NULL,
    username       varchar(255) NOT NULL,
    email          varchar(255) NOT NULL,
    password_hash  varchar(255) NOT NULL,
    display_name   varchar(255) NOT NULL DEFAULT '',
    is_admin       boolean      NOT NULL DEFAULT false,
    is_active      boolean      NOT NULL DEFAULT true,
    created_at     timestamptz  NOT NULL DEFAULT now(),
    updated_at     timestamptz  NOT NULL DEFAULT now(),
    is_super_admin boolean      NOT NULL DEFAULT false,
    role           varchar(50)  NOT NULL DEFAULT 'admin',
    token_version  integer      NOT NULL DEFAULT 0,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX idx_users_account ON users (account_id);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.3 devices — one WhatsApp session
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE devices (
    id           uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id   uuid         NOT NULL,
    name         varchar(255),
    phone        varchar(50),
    jid          varchar(255),
    status       varchar(50)  NOT NULL DEFAULT 'disconnected',
    qr_code      text,
    last_seen_at timestamptz,
    created_at   timestamptz  NOT NULL DEFAULT now(),
    updated_at   timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT devices_pkey PRIMARY KEY (id),
    CONSTRAINT devices_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE INDEX idx_devices_account ON devices (account_id);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.4 contacts
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE contacts (
    id          uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id  uuid         NOT NULL,
    device_id   uuid,
    jid         varchar(255) NOT NULL,
    phone       varchar(50),
    name        varchar(255),
    push_name   varchar(255),
    avatar_url  text,
    is_group    boolean      NOT NULL DEFAULT false,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    custom_name varchar(255),
    email       varchar(255),
    company     varchar(255),
    tags        text[],
    notes       text,
    source      varchar(100) DEFAULT 'whatsapp',
    last_name   varchar(255),
    short_name  varchar(100),
    age         integer,
    kommo_id    bigint,
    CONSTRAINT contacts_pkey PRIMARY KEY (id),
    CONSTRAINT contacts_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT contacts_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE SET NULL,
    CONSTRAINT contacts_account_id_jid_key UNIQUE (account_id, jid)
);
CREATE UNIQUE INDEX idx_contacts_kommo_id ON contacts (account_id, kommo_id) WHERE kommo_id IS NOT NULL;
-- Contacts page: WHERE account_id AND is_group ORDER BY COALESCE(custom_name, name, push_name, phone) [ASC NULLS LAST], id
CREATE INDEX idx_contacts_display ON contacts (account_id, is_group, (COALESCE(custom_name, name, push_name, phone)), id);
-- Duplicates: non-empty phone shared within a tenant
CREATE INDEX idx_contacts_account_phone ON contacts (account_id, phone) WHERE phone IS NOT NULL AND phone <> '';
CREATE INDEX idx_contacts_device ON contacts (device_id) WHERE device_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.5 chats — one conversation per tenant + JID
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE chats (
    id              uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id      uuid         NOT NULL,
    device_id       uuid,
    contact_id      uuid,
    jid             varchar(255) NOT NULL,
    name            varchar(255),
    last_message    text,
    last_message_at timestamptz,
    unread_count    integer      NOT NULL DEFAULT 0,
    is_archived     boolean      NOT NULL DEFAULT false,
    is_pinned       boolean      NOT NULL DEFAULT false,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT chats_pkey PRIMARY KEY (id),
    CONSTRAINT chats_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT chats_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE SET NULL,
    CONSTRAINT chats_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE SET NULL,
    CONSTRAINT chats_account_id_jid_key UNIQUE (account_id, jid)
);
-- Inbox (archived=false): ORDER BY is_pinned DESC, last_message_at DESC NULLS LAST, id
CREATE INDEX idx_chats_inbox ON chats (account_id, is_pinned DESC, last_message_at DESC NULLS LAST, id) WHERE NOT is_archived;
-- All chats of a tenant by recency (archived=true lists, admin views)
CREATE INDEX idx_chats_account_last_message ON chats (account_id, last_message_at DESC NULLS LAST);
CREATE INDEX idx_chats_device ON chats (device_id) WHERE device_id IS NOT NULL;
CREATE INDEX idx_chats_contact ON chats (contact_id) WHERE contact_id IS NOT NULL;
-- Search (repeat verbatim):

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.6 messages
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE messages (
    id                  uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id          uuid         NOT NULL,
    device_id           uuid,
    chat_id             uuid         NOT NULL,
    message_id          varchar(255) NOT NULL,
    from_jid            varchar(255),
    from_name           varchar(255),
    body                text,
    message_type        varchar(50)  NOT NULL DEFAULT 'text',
    media_url           text,
    media_mimetype      varchar(100),
    media_filename      varchar(255),
    media_size          bigint,
    is_from_me          boolean      NOT NULL DEFAULT false,
    is_read             boolean      NOT NULL DEFAULT false,
    status              varchar(50)  NOT NULL DEFAULT 'sent',
    "timestamp"         timestamptz  NOT NULL,
    created_at          timestamptz  NOT NULL DEFAULT now(),
    quoted_message_id   varchar(255),
    quoted_body         text,
    quoted_sender       varchar(255),
    poll_question       text,
    poll_max_selections integer      DEFAULT 1,
    CONSTRAINT messages_pkey PRIMARY KEY (id),
    CONSTRAINT messages_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT messages_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE SET NULL,
    CONSTRAINT messages_chat_id_fkey FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE,
    -- Dedup key (smell 9 fixed): ON CONFLICT (account_id, chat_id, message_id) DO NOTHING
    CONSTRAINT messages_account_id_chat_id_message_id_key UNIQUE (account_id, chat_id, message_id)
);
-- Message page, keyset: WHERE chat_id = $1 [AND ("timestamp", id) < ($2, $3)] ORDER BY "timestamp" DESC, id DESC
CREATE INDEX idx_messages_chat_ts ON messages (chat_id, "timestamp" DESC, id DESC);
CREATE INDEX idx_messages_device ON messages (device_id) WHERE device_id IS NOT NULL;
-- Recent stickers: WHERE account_id AND message_type='sticker' AND media_url <> ''
CREATE INDEX idx_messages_account_sticker ON messages (account_id, media_url) WHERE message_type = 'sticker';

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.8 pipelines / 1.9 pipeline_stages (created before leads, which reference them)
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE pipelines (
    id          uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id  uuid         NOT NULL,
    name        varchar(255) NOT NULL,
    description text,
    is_default  boolean      NOT NULL DEFAULT false,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    kommo_id    bigint,
    CONSTRAINT pipelines_pkey PRIMARY KEY (id),
    CONSTRAINT pipelines_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX idx_pipelines_kommo_id ON pipelines (account_id, kommo_id) WHERE kommo_id IS NOT NULL;
CREATE INDEX idx_pipelines_account ON pipelines (account_id, created_at);
-- At most one default pipeline per tenant (smell 5)
CREATE UNIQUE INDEX idx_pipelines_one_default ON pipelines (account_id) WHERE is_default;

CREATE TABLE pipeline_stages (
    id          uuid         NOT NULL DEFAULT gen_random_uuid(),
    pipeline_id uuid         NOT NULL,
    name        varchar(255) NOT NULL,
    color       varchar(50)  NOT NULL DEFAULT '#6366f1',
    position    integer      NOT NULL DEFAULT 0,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    kommo_id    bigint,
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT pipeline_stages_pkey PRIMARY KEY (id),
    CONSTRAINT pipeline_stages_pipeline_id_fkey FOREIGN KEY (pipeline_id) REFERENCES pipelines (id) ON DELETE CASCADE
);
-- Per pipeline, not global (smell 4)
CREATE UNIQUE INDEX idx_pipeline_stages_kommo_id ON pipeline_stages (pipeline_id, kommo_id) WHERE kommo_id IS NOT NULL;
CREATE INDEX idx_pipeline_stages_pipeline ON pipeline_stages (pipeline_id, position);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.7 leads
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE leads (
    id            uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id    uuid         NOT NULL,
    contact_id    uuid,
    jid           varchar(255) NOT NULL,
    name          varchar(255),
    phone         varchar(50),
    email         varchar(255),
    status        varchar(50)  DEFAULT 'new',
    source        varchar(100),
    notes         text,
    tags          text[],
    custom_fields jsonb        DEFAULT '{}',
    assigned_to   uuid,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),
    last_name     varchar(255),
    short_name    varchar(100),
    company       varchar(255),
    age           integer,
    pipeline_id   uuid,
    stage_id      uuid,
    kommo_id      bigint,
    CONSTRAINT leads_pkey PRIMARY KEY (id),
    CONSTRAINT leads_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT leads_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE SET NULL,
    CONSTRAINT leads_assigned_to_fkey FOREIGN KEY (assigned_to) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT leads_pipeline_id_fkey FOREIGN KEY (pipeline_id) REFERENCES pipelines (id) ON DELETE SET NULL,
    CONSTRAINT leads_stage_id_fkey FOREIGN KEY (stage_id) REFERENCES pipeline_stages (id) ON DELETE SET NULL,
    CONSTRAINT leads_account_id_jid_key UNIQUE (account_id, jid)
);
CREATE UNIQUE INDEX idx_leads_kommo_id ON leads (account_id, kommo_id) WHERE kommo_id IS NOT NULL;
-- Leads board / paging: WHERE account_id ORDER BY created_at DESC, id DESC
CREATE INDEX idx_leads_account_created ON leads (account_id, created_at DESC, id DESC);
CREATE INDEX idx_leads_account_stage ON leads (account_id, stage_id);
CREATE INDEX idx_leads_account_pipeline ON leads (account_id, pipeline_id);
-- FK columns (SET NULL on stage / pipeline / contact / user delete; per-stage counts)
CREATE INDEX idx_leads_stage ON leads (stage_id) WHERE stage_id IS NOT NULL;
CREATE INDEX idx_leads_pipeline ON leads (pipeline_id) WHERE pipeline_id IS NOT NULL;
CREATE INDEX idx_leads_contact ON leads (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX idx_leads_assigned_to ON leads (assigned_to) WHERE assigned_to IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.10 lead_stages — unused by the original code, kept for fidelity
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE lead_stages (
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    lead_id    uuid        NOT NULL,
    stage_id   uuid        NOT NULL,
    entered_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT lead_stages_pkey PRIMARY KEY (id),
    CONSTRAINT lead_stages_lead_id_fkey FOREIGN KEY (lead_id) REFERENCES leads (id) ON DELETE CASCADE,
    CONSTRAINT lead_stages_stage_id_fkey FOREIGN KEY (stage_id) REFERENCES pipeline_stages (id) ON DELETE CASCADE,
    CONSTRAINT lead_stages_lead_id_stage_id_key UNIQUE (lead_id, stage_id)
);
CREATE INDEX idx_lead_stages_stage ON lead_stages (stage_id);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.11 contact_device_names
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE contact_device_names (
    id            uuid         NOT NULL DEFAULT gen_random_uuid(),
    contact_id    uuid         NOT NULL,
    device_id     uuid         NOT NULL,
    name          varchar(255),
    push_name     varchar(255),
    business_name varchar(255),
    synced_at     timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT contact_device_names_pkey PRIMARY KEY (id),
    CONSTRAINT contact_device_names_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE CASCADE,
    CONSTRAINT contact_device_names_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE,
    CONSTRAINT contact_device_names_contact_id_device_id_key UNIQUE (contact_id, device_id)
);
CREATE INDEX idx_contact_device_names_device ON contact_device_names (device_id);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.12 tags
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE tags (
    id         uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id uuid         NOT NULL,
    name       varchar(100) NOT NULL,
    color      varchar(20)  NOT NULL DEFAULT '#6366f1',
    created_at timestamptz  NOT NULL DEFAULT now(),
    updated_at timestamptz  NOT NULL DEFAULT now(),
    kommo_id   bigint,
    CONSTRAINT tags_pkey PRIMARY KEY (id),
    CONSTRAINT tags_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT tags_account_id_name_key UNIQUE (account_id, name)
);
CREATE UNIQUE INDEX idx_tags_kommo_id ON tags (account_id, kommo_id) WHERE kommo_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.17 events / 1.18 event_participants / 1.19 interactions
-- (created before campaigns and participant_tags, which reference them)
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE events (
    id          uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id  uuid         NOT NULL,
    name        varchar(255) NOT NULL,
    description text,
    event_date  timestamptz,
    event_end   timestamptz,
    location    varchar(500),
    status      varchar(50)  NOT NULL DEFAULT 'active',
    color       varchar(20)  NOT NULL DEFAULT '#3b82f6',
    created_by  uuid,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (id),
    CONSTRAINT events_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT events_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
);
-- Events list: WHERE account_id ORDER BY COALESCE(event_date, created_at) DESC
CREATE INDEX idx_events_account_date ON events (account_id, (COALESCE(event_date, created_at)) DESC);
CREATE INDEX idx_events_created_by ON events (created_by) WHERE created_by IS NOT NULL;

CREATE TABLE event_participants (
    id               uuid         NOT NULL DEFAULT gen_random_uuid(),
    event_id         uuid         NOT NULL,
    contact_id       uuid,
    name             varchar(255) NOT NULL,
    last_name        varchar(255),
    phone            varchar(50),
    email            varchar(255),
    age              integer,
    status           varchar(50)  NOT NULL DEFAULT 'invited',
    notes            text,
    next_action      text,
    next_action_date timestamptz,
    invited_at       timestamptz  DEFAULT now(),
    confirmed_at     timestamptz,
    attended_at      timestamptz,
    created_at       timestamptz  NOT NULL DEFAULT now(),
    updated_at       timestamptz  NOT NULL DEFAULT now(),
    short_name       varchar(100),
    CONSTRAINT event_participants_pkey PRIMARY KEY (id),
    CONSTRAINT event_participants_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE,
    CONSTRAINT event_participants_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE SET NULL
);
-- Names matched by handlers (unique violation → 409):
CREATE UNIQUE INDEX idx_event_participants_unique_phone ON event_participants (event_id, phone)
    WHERE phone IS NOT NULL AND phone <> '';
CREATE UNIQUE INDEX idx_event_participants_unique_email ON event_participants (event_id, email)
    WHERE email IS NOT NULL AND email <> '';
CREATE UNIQUE INDEX idx_event_participants_unique_contact ON event_participants (event_id, contact_id)
    WHERE contact_id IS NOT NULL;
CREATE INDEX idx_event_participants_event ON event_participants (event_id);
-- Upcoming actions: JOIN events (account) WHERE next_action_date IS NOT NULL ORDER BY next_action_date
CREATE INDEX idx_event_participants_next_action ON event_participants (event_id, next_action_date)
    WHERE next_action_date IS NOT NULL;
CREATE INDEX idx_event_participants_contact ON event_participants (contact_id) WHERE contact_id IS NOT NULL;

CREATE TABLE interactions (
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    account_id       uuid        NOT NULL,
    contact_id       uuid,
    event_id         uuid,
    participant_id   uuid,
    type             varchar(50) NOT NULL,
    direction        varchar(20),
    outcome          varchar(50),
    notes            text,
    next_action      text,
    next_action_date timestamptz,
    created_by       uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    lead_id          uuid,
    CONSTRAINT interactions_pkey PRIMARY KEY (id),
    CONSTRAINT interactions_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT interactions_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE SET NULL,
    CONSTRAINT interactions_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE SET NULL,
    CONSTRAINT interactions_participant_id_fkey FOREIGN KEY (participant_id) REFERENCES event_participants (id) ON DELETE SET NULL,
    CONSTRAINT interactions_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT interactions_lead_id_fkey FOREIGN KEY (lead_id) REFERENCES leads (id) ON DELETE SET NULL
);
-- Timelines: WHERE <x>_id = $1 ORDER BY created_at DESC
CREATE INDEX idx_interactions_account ON interactions (account_id, created_at DESC);
CREATE INDEX idx_interactions_contact ON interactions (contact_id, created_at DESC) WHERE contact_id IS NOT NULL;
CREATE INDEX idx_interactions_lead ON interactions (lead_id, created_at DESC) WHERE lead_id IS NOT NULL;
CREATE INDEX idx_interactions_event ON interactions (event_id, created_at DESC) WHERE event_id IS NOT NULL;
CREATE INDEX idx_interactions_participant ON interactions (participant_id, created_at DESC) WHERE participant_id IS NOT NULL;
CREATE INDEX idx_interactions_created_by ON interactions (created_by) WHERE created_by IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.13 tag junctions — PK (entity, tag) + reverse (tag, entity) for tag filters and tag deletes
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE contact_tags (
    contact_id uuid NOT NULL,
    tag_id     uuid NOT NULL,
    CONSTRAINT contact_tags_pkey PRIMARY KEY (contact_id, tag_id),
    CONSTRAINT contact_tags_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE CASCADE,
    CONSTRAINT contact_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE
);
CREATE INDEX idx_contact_tags_tag ON contact_tags (tag_id, contact_id);

CREATE TABLE lead_tags (
    lead_id uuid NOT NULL,
    tag_id  uuid NOT NULL,
    CONSTRAINT lead_tags_pkey PRIMARY KEY (lead_id, tag_id),
    CONSTRAINT lead_tags_lead_id_fkey FOREIGN KEY (lead_id) REFERENCES leads (id) ON DELETE CASCADE,
    CONSTRAINT lead_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE
);
CREATE INDEX idx_lead_tags_tag ON lead_tags (tag_id, lead_id);

CREATE TABLE chat_tags (
    chat_id uuid NOT NULL,
    tag_id  uuid NOT NULL,
    CONSTRAINT chat_tags_pkey PRIMARY KEY (chat_id, tag_id),
    CONSTRAINT chat_tags_chat_id_fkey FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE,
    CONSTRAINT chat_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE
);
CREATE INDEX idx_chat_tags_tag ON chat_tags (tag_id, chat_id);

CREATE TABLE participant_tags (
    participant_id uuid NOT NULL,
    tag_id         uuid NOT NULL,
    CONSTRAINT participant_tags_pkey PRIMARY KEY (participant_id, tag_id),
    CONSTRAINT participant_tags_participant_id_fkey FOREIGN KEY (participant_id) REFERENCES event_participants (id) ON DELETE CASCADE,
    CONSTRAINT participant_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE
);
CREATE INDEX idx_participant_tags_tag ON participant_tags (tag_id, participant_id);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.14 campaigns / 1.15 campaign_recipients / 1.16 campaign_attachments
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE campaigns (
    id               uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id       uuid         NOT NULL,
    device_id        uuid         NOT NULL,
    name             varchar(255) NOT NULL,
    message_template text         NOT NULL DEFAULT '',
    media_url        text,
    media_type       varchar(50),
    status           varchar(50)  NOT NULL DEFAULT 'draft',
    scheduled_at     timestamptz,
    started_at       timestamptz,
    completed_at     timestamptz,
    total_recipients integer      NOT NULL DEFAULT 0,
    sent_count       integer      NOT NULL DEFAULT 0,
    failed_count     integer      NOT NULL DEFAULT 0,
    settings         jsonb        NOT NULL DEFAULT '{}',
    created_at       timestamptz  NOT NULL DEFAULT now(),
    updated_at       timestamptz  NOT NULL DEFAULT now(),
    event_id         uuid,
    source           varchar(50),
    CONSTRAINT campaigns_pkey PRIMARY KEY (id),
    CONSTRAINT campaigns_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT campaigns_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE,
    CONSTRAINT campaigns_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE SET NULL
);
CREATE INDEX idx_campaigns_account_created ON campaigns (account_id, created_at DESC);
-- Worker (all tenants, every 10 s): WHERE status IN ('running','scheduled') ORDER BY created_at
CREATE INDEX idx_campaigns_active ON campaigns (status, created_at) WHERE status IN ('running', 'scheduled');
CREATE INDEX idx_campaigns_device ON campaigns (device_id);
CREATE INDEX idx_campaigns_event ON campaigns (event_id) WHERE event_id IS NOT NULL;

CREATE TABLE campaign_recipients (
    id            uuid         NOT NULL DEFAULT gen_random_uuid(),
    campaign_id   uuid         NOT NULL,
    contact_id    uuid,
    jid           varchar(255) NOT NULL,
    name          varchar(255),
    phone         varchar(50),
    status        varchar(50)  NOT NULL DEFAULT 'pending',
    sent_at       timestamptz,
    error_message text,
    wait_time_ms  integer,
    metadata      jsonb        DEFAULT '{}',
    -- Insertion order = send order (smell 8): next pending = ORDER BY seq LIMIT 1
    seq           bigint       GENERATED ALWAYS AS IDENTITY,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT campaign_recipients_pkey PRIMARY KEY (id),
    CONSTRAINT campaign_recipients_campaign_id_fkey FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE,
    CONSTRAINT campaign_recipients_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE SET NULL,
    -- One recipient per JID per campaign: ON CONFLICT (campaign_id, jid) DO NOTHING
    CONSTRAINT campaign_recipients_campaign_id_jid_key UNIQUE (campaign_id, jid)
);
CREATE INDEX idx_campaign_recipients_pending ON campaign_recipients (campaign_id, seq) WHERE status = 'pending';
CREATE INDEX idx_campaign_recipients_contact ON campaign_recipients (contact_id) WHERE contact_id IS NOT NULL;

CREATE TABLE campaign_attachments (
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    campaign_id uuid        NOT NULL,
    media_url   text        NOT NULL,
    media_type  varchar(50) NOT NULL,
    caption     text         NOT NULL DEFAULT '',
    file_name   varchar(255) NOT NULL DEFAULT '',
    file_size   bigint       NOT NULL DEFAULT 0,
    position    integer      NOT NULL DEFAULT 0,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT campaign_attachments_pkey PRIMARY KEY (id),
    CONSTRAINT campaign_attachments_campaign_id_fkey FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE
);
CREATE INDEX idx_campaign_attachments_campaign ON campaign_attachments (campaign_id, position);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.20 saved_stickers
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE saved_stickers (
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    account_id uuid        NOT NULL,
    media_url  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT saved_stickers_pkey PRIMARY KEY (id),
    CONSTRAINT saved_stickers_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX idx_saved_stickers_unique ON saved_stickers (account_id, media_url);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.21 user_accounts — membership of a user in tenants
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE user_accounts (
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL,
    account_id uuid        NOT NULL,
    role       varchar(50) NOT NULL DEFAULT 'agent',
    is_default boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_accounts_pkey PRIMARY KEY (id),
    CONSTRAINT user_accounts_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_accounts_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
-- A unique INDEX (not a constraint), as in the original; ON CONFLICT (user_id, account_id) infers it.
CREATE UNIQUE INDEX idx_user_accounts_unique ON user_accounts (user_id, account_id);
CREATE INDEX idx_user_accounts_account ON user_accounts (account_id);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.22 message_reactions
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE message_reactions (
    id                uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id        uuid         NOT NULL,
    chat_id           uuid         NOT NULL,
    target_message_id varchar(255) NOT NULL,
    sender_jid        varchar(255) NOT NULL,
    sender_name       varchar(255),
    emoji             varchar(50)  NOT NULL,
    is_from_me        boolean      NOT NULL DEFAULT false,
    "timestamp"       timestamptz  NOT NULL,
    created_at        timestamptz  NOT NULL DEFAULT now(),
    updated_at        timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT message_reactions_pkey PRIMARY KEY (id),
    CONSTRAINT message_reactions_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT message_reactions_chat_id_fkey FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE,
    -- Also serves "reactions of a chat" and "reactions of these stanza ids in a chat".
    CONSTRAINT message_reactions_chat_id_target_message_id_sender_jid_key UNIQUE (chat_id, target_message_id, sender_jid)
);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.23 poll_options / 1.24 poll_votes
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE poll_options (
    id         uuid         NOT NULL DEFAULT gen_random_uuid(),
    message_id uuid         NOT NULL,
    name       varchar(255) NOT NULL,
    vote_count integer      NOT NULL DEFAULT 0,
    -- 0-based option order as sent (smell 8): ORDER BY position
    position   integer      NOT NULL DEFAULT 0,
    updated_at timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT poll_options_pkey PRIMARY KEY (id),
    CONSTRAINT poll_options_message_id_fkey FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE
);
CREATE INDEX idx_poll_options_message ON poll_options (message_id, position);

CREATE TABLE poll_votes (
    id             uuid         NOT NULL DEFAULT gen_random_uuid(),
    message_id     uuid         NOT NULL,
    voter_jid      varchar(255) NOT NULL,
    selected_names text[]       NOT NULL DEFAULT '{}',
    "timestamp"    timestamptz  NOT NULL,
    updated_at     timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT poll_votes_pkey PRIMARY KEY (id),
    CONSTRAINT poll_votes_message_id_fkey FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE,
    CONSTRAINT poll_votes_message_id_voter_jid_key UNIQUE (message_id, voter_jid)
);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.25 quick_replies
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE quick_replies (
    id         uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id uuid         NOT NULL,
    shortcut   varchar(100) NOT NULL,
    title      varchar(255) NOT NULL,
    body       text         NOT NULL,
    created_at timestamptz  NOT NULL DEFAULT now(),
    updated_at timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT quick_replies_pkey PRIMARY KEY (id),
    CONSTRAINT quick_replies_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE INDEX idx_quick_replies_account ON quick_replies (account_id, shortcut);

-- ---------------------------------------------------------------------------------------------------------------------
-- 1.26 kommo_connected_pipelines
-- ---------------------------------------------------------------------------------------------------------------------
CREATE TABLE kommo_connected_pipelines (
    id                uuid        NOT NULL DEFAULT gen_random_uuid(),
    account_id        uuid        NOT NULL,
    kommo_pipeline_id bigint      NOT NULL,
    pipeline_id       uuid,
    enabled           boolean     NOT NULL DEFAULT true,
    last_synced_at    timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT kommo_connected_pipelines_pkey PRIMARY KEY (id),
    CONSTRAINT kommo_connected_pipelines_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT kommo_connected_pipelines_pipeline_id_fkey FOREIGN KEY (pipeline_id) REFERENCES pipelines (id) ON DELETE SET NULL,
    CONSTRAINT kommo_connected_pipelines_account_id_kommo_pipeline_id_key UNIQUE (account_id, kommo_pipeline_id)
);
CREATE INDEX idx_kommo_connected_pipelines_pipeline ON kommo_connected_pipelines (pipeline_id) WHERE pipeline_id IS NOT NULL;
