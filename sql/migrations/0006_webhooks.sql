-- Outgoing webhooks (issue 15): subscriptions per account and the durable outbox of their deliveries.
--
-- `webhooks` is one subscription: a URL, the event names it wants (or '*'), its signing secret. A disabled
-- subscription gets no new outbox rows; `disabled_reason` says why the server disabled it (failing 24 h).
-- `webhook_deliveries` is the outbox: one row per (event, subscription), written before the change that caused
-- it is acknowledged (docs/WEBHOOKS.md, "Durability"). `seq` orders a subscription's deliveries (head of line:
-- a row is sent only when every earlier pending row of its subscription went out). `event_id` is the same for
-- every subscription of one event and is what receivers de-duplicate on (X-Clarin-Delivery). `data` is the JSON
-- text of the WebSocket event's data, exactly as encoded once.
CREATE TABLE webhooks (
    id              uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id      uuid         NOT NULL,
    url             varchar(2048) NOT NULL,
    events          text[]       NOT NULL,
    secret          varchar(255) NOT NULL,
    enabled         boolean      NOT NULL DEFAULT true,
    description     varchar(500) NOT NULL DEFAULT '',
    disabled_reason varchar(500) NOT NULL DEFAULT '',
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT webhooks_pkey PRIMARY KEY (id),
    CONSTRAINT webhooks_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
-- List: WHERE account_id = $1 ORDER BY created_at, id
CREATE INDEX idx_webhooks_account ON webhooks (account_id, created_at, id);
-- Outbox writes and the delivery scan: the enabled subscriptions (of an account).
CREATE INDEX idx_webhooks_enabled ON webhooks (account_id) WHERE enabled;

CREATE TABLE webhook_deliveries (
    id               uuid         NOT NULL DEFAULT gen_random_uuid(),
    seq              bigint       GENERATED ALWAYS AS IDENTITY,
    account_id       uuid         NOT NULL,
    webhook_id       uuid         NOT NULL,
    event_id         uuid         NOT NULL,
    event            varchar(64)  NOT NULL,
    data             text         NOT NULL,
    occurred_at      timestamptz  NOT NULL DEFAULT now(),
    status           varchar(16)  NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts         integer      NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz  NOT NULL DEFAULT now(),
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    status_code      integer,
    last_error       varchar(500) NOT NULL DEFAULT '',
    duration_ms      double precision,
    delivered_at     timestamptz,
    CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_deliveries_status_check CHECK (status IN ('pending', 'delivered', 'failed')),
    CONSTRAINT webhook_deliveries_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE
);
-- The head of a subscription's queue: WHERE webhook_id = $1 AND status = 'pending' ORDER BY seq
CREATE INDEX idx_webhook_deliveries_pending ON webhook_deliveries (webhook_id, seq) WHERE status = 'pending';
-- The delivery log: WHERE webhook_id = $1 AND account_id = $2 ORDER BY seq DESC
CREATE INDEX idx_webhook_deliveries_log ON webhook_deliveries (webhook_id, seq DESC);
-- Metrics (queue depth, oldest pending age): WHERE status = 'pending' ORDER BY occurred_at
CREATE INDEX idx_webhook_deliveries_pending_age ON webhook_deliveries (occurred_at) WHERE status = 'pending';
-- Retention: WHERE status = 'delivered' AND delivered_at < $1
CREATE INDEX idx_webhook_deliveries_delivered ON webhook_deliveries (delivered_at) WHERE status = 'delivered';
