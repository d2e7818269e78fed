-- Avatars used to be stored at the guessable key <account>/avatars/<phone>.jpg, served by the public media
-- proxy: anyone with an account id could probe which phones are a tenant's contacts and fetch their pictures.
-- New avatars carry a 128-bit random token in the name and the proxy now refuses the old form (404). The
-- contacts still linked to an old key are cleared, so the next incoming message from them fetches the picture
-- again under an unguessable key (until then the dashboard shows its placeholder, as for any contact without
-- a picture). The old objects stay in storage, unreachable through the proxy; removing
-- <account>/avatars/<digits>.jpg objects from the bucket/media directory is an optional clean-up.
-- The pattern is exactly what the old writer produced (proxy URL of <uuid>/avatars/<JID user part>.jpg);
-- URLs set by hand or by other writers are left alone.
UPDATE contacts
SET avatar_url = NULL  -- updated_at kept: housekeeping, not an edit anyone made
WHERE avatar_url ~ '^/api/media/file/[0-9a-f-]{36}/avatars/[0-9]+(-[0-9]+)?\.jpg$';
