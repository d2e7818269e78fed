-- Kommo sync summaries that survive a crash (issue 15, docs/WEBHOOKS.md "Durability").
-- One `lead_update {action: "kommo_synced", count}` sums a sync made of many page transactions. For an account with
-- an enabled webhook subscription each page adds the leads it changed to `unannounced` in its own transaction; the
-- summary's outbox rows are written in the transaction that reads and clears it (the cursor advance, or right
-- after a sync cut short). A worker killed mid-sync leaves the count here for the next sync of the pipeline to
-- announce, so changed leads are never left without their webhook.
ALTER TABLE kommo_connected_pipelines ADD COLUMN unannounced integer NOT NULL DEFAULT 0;
