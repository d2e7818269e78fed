-- Scheduled single messages (issue 20 goal 5; docs/SCHEDULED_MESSAGES.md, clarin/messaging/scheduled*.py).
--
-- One row per message to send at `send_at` through `device_id` to `to_jid` (a phone JID, LID or group; from
-- `to` or the chat named at creation). Status: pending → sending → sent | failed, pending → cancelled.
-- `attempts` counts claims: the sender names each attempt's Idempotency-Key 'clarin-scheduled:<id>:<attempts>'
-- and links the outgoing message to it in the statement that records it (clarin.messaging.outbound), which is
-- how a row left 'sending' by a dead process is settled without ever sending twice.
CREATE TABLE scheduled_messages (
    id              uuid         NOT NULL DEFAULT gen_random_uuid(),
    account_id      uuid         NOT NULL,
    device_id       uuid         NOT NULL,
    chat_id         uuid,                    -- the chat it was scheduled from, or (once sent) the chat it went to
    to_jid          varchar(255) NOT NULL,
    body            text         NOT NULL,
    send_at         timestamptz  NOT NULL,
    status          varchar(20)  NOT NULL DEFAULT 'pending',
    attempts        integer      NOT NULL DEFAULT 0,
    claimed_at      timestamptz,
    sent_at         timestamptz,
    sent_message_id uuid,                    -- messages.id of the sent message (no FK: chats and messages may go)
    error_message   text,
    created_by      uuid,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT scheduled_messages_pkey PRIMARY KEY (id),
    CONSTRAINT scheduled_messages_status_check
        CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')),
    CONSTRAINT scheduled_messages_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT scheduled_messages_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE,
    CONSTRAINT scheduled_messages_chat_id_fkey FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE SET NULL,
    CONSTRAINT scheduled_messages_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
);
-- The sender's due scan and next-wake lookup: per device this process runs, pending rows in send_at order.
CREATE INDEX idx_scheduled_messages_due ON scheduled_messages (device_id, send_at) WHERE status = 'pending';
-- Reconcile on taking a device over: the rows a dead owner left 'sending' (few, short-lived).
CREATE INDEX idx_scheduled_messages_sending ON scheduled_messages (device_id) WHERE status = 'sending';
-- GET /api/messages/scheduled (soonest first) and its total, with and without ?status=.
CREATE INDEX idx_scheduled_messages_account ON scheduled_messages (account_id, send_at, id);
CREATE INDEX idx_scheduled_messages_account_status ON scheduled_messages (account_id, status, send_at, id);
-- ON DELETE SET NULL of chats / users must not scan the table.
CREATE INDEX idx_scheduled_messages_chat ON scheduled_messages (chat_id) WHERE chat_id IS NOT NULL;
CREATE INDEX idx_scheduled_messages_created_by ON scheduled_messages (created_by) WHERE created_by IS NOT NULL;
