-- Number health (docs/NUMBER_HEALTH.md): one send budget per WhatsApp number, warm-up, danger signals.
--
-- devices.paired_at      when the number was (last) paired: the warm-up schedule counts days from it. Set by a
--                        trigger whenever the stored JID gets a (different) phone, so pool.py needs no change;
--                        numbers paired before this migration are back-filled with created_at (their age is not
--                        known; the device row is the best lower bound).
-- devices.send_budget    per-device overrides of the default limits (PUT /api/devices/:id/budget); NULL = defaults.
-- devices.health*        ok | throttled | paused | banned, why, the evidence (JSON) and since when. Only the owner
--                        of the device writes them (the send path runs there).
-- campaigns.pause_reason why the number-health guard paused (or the logout rule failed) a campaign; cleared when a
--                        person starts it again.
-- device_sends           the budget ledger: one row per message handed to the send path, kept ~1 day. Counting in
--                        PostgreSQL (not in the owner's memory) survives an owner take-over and holds with any
--                        number of nodes. Index (device_id, kind, sent_at) serves the window counts (each a
--                        range of one kind, stopped at the limit); (device_id, chat_jid, sent_at) the
--                        "conversation this number opened today" probe.

ALTER TABLE devices
    ADD COLUMN paired_at timestamptz,
    ADD COLUMN send_budget jsonb,
    ADD COLUMN health varchar(20) NOT NULL DEFAULT 'ok',
    ADD COLUMN health_reason text,
    ADD COLUMN health_evidence jsonb,
    ADD COLUMN health_changed_at timestamptz;

UPDATE devices SET paired_at = created_at WHERE jid IS NOT NULL AND jid <> '';

CREATE FUNCTION devices_paired_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.jid IS NOT NULL AND NEW.jid <> '' AND (
        OLD.jid IS NULL OR OLD.jid = ''
        OR split_part(split_part(OLD.jid, '@', 1), ':', 1) <> split_part(split_part(NEW.jid, '@', 1), ':', 1)
    ) THEN
        NEW.paired_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER devices_paired_at BEFORE UPDATE OF jid ON devices
    FOR EACH ROW EXECUTE FUNCTION devices_paired_at();

ALTER TABLE campaigns ADD COLUMN pause_reason text;

CREATE TABLE device_sends (
    id         bigint       GENERATED ALWAYS AS IDENTITY,
    device_id  uuid         NOT NULL,
    account_id uuid         NOT NULL,
    chat_jid   varchar(255) NOT NULL,
    kind       varchar(10)  NOT NULL,
    outcome    varchar(10)  NOT NULL DEFAULT 'pending',
    error      text,
    sent_at    timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT device_sends_pkey PRIMARY KEY (id),
    CONSTRAINT device_sends_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE,
    CONSTRAINT device_sends_kind_check CHECK (kind IN ('cold', 'reply')),
    CONSTRAINT device_sends_outcome_check CHECK (outcome IN ('pending', 'sent', 'failed'))
);
CREATE INDEX idx_device_sends_device_kind_time ON device_sends (device_id, kind, sent_at);
CREATE INDEX idx_device_sends_device_chat ON device_sends (device_id, chat_jid, sent_at);
