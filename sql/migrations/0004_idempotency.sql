-- Idempotency keys (issue 12, item 4): `Idempotency-Key` on the send routes and campaign starts.
--
-- One row per (account, key). The request that inserted the row owns it through `claim` (a random token): only
-- that request may link a pending outgoing message to it, store its answer, or release it. A send links its
-- pending `messages` row in the very statement that inserts it (compare-and-set on `claim`), BEFORE the driver is
-- called, so a retry can always tell "nothing was sent yet" (no link: may run again) from "handed to WhatsApp"
-- (linked: never run again). Rows live at least 24 h; expired rows are purged in bounded batches.
CREATE TABLE idempotency_keys (
    account_id  uuid         NOT NULL,
    key         varchar(255) NOT NULL,
    request     varchar(600) NOT NULL,   -- "<METHOD> <path>": the same key on another request is refused (422)
    claim       uuid         NOT NULL,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    message_id  uuid,                    -- messages.id of the pending outgoing message (no FK: a failed send's row is deleted)
    status_code integer,                 -- the stored answer; NULL while the first request is in flight
    body        bytea,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (account_id, key),
    CONSTRAINT idempotency_keys_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
-- Purge: WHERE account_id = $1 AND created_at < now() - ttl
CREATE INDEX idx_idempotency_keys_created ON idempotency_keys (account_id, created_at);
