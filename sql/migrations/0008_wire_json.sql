-- The dashboard's JSON shapes of the hot reads, built by PostgreSQL (issue 13: the raw-SQL path).
--
-- A page of 50 leads used to travel as 50 rows of 25 columns that the driver turned into 50 dicts, UUID objects
-- and datetimes, that Python turned into structs and encoded again. Now the page is one text value that the
-- service passes through unchanged (as PostgREST does). The output is byte-for-byte what msgspec encoded from
-- the wire structs of clarin/wire/ (tests/test_wire_json.py compares both on every field shape):
--
--   * keys in the struct's field order; a key whose struct default is null/empty is omitted when so
--     (omit_defaults), required keys are always written;
--   * compact separators (no spaces), strings escaped by to_json (same escapes as msgspec for valid text);
--   * timestamps as msgspec writes an aware UTC datetime: "YYYY-MM-DDTHH:MM:SS[.ffffff]Z", the fraction only
--     when it is not zero;
--   * jsonb values (custom_fields) compact when they hold no null member; with one, jsonb's own text (one space
--     after ':' and ','), because json_strip_nulls, the only compacting function, would drop those members.
--
-- Plain SQL functions, all STABLE (an IMMUTABLE one whose body calls a STABLE function such as to_json is not
-- inlined): the planner inlines them into the calling statement, so they cost what the
-- expression costs. Each ``a || b`` with a NULL side is NULL, which is how optional keys disappear
-- (coalesce(',"key":' || value, '')).

CREATE OR REPLACE FUNCTION wire_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT replace(to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '.000000Z', 'Z')
$$;

-- A JSON string, or the JSON literal null for SQL NULL (required keys).
CREATE OR REPLACE FUNCTION wire_str(v text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(to_json(v)::text, 'null')
$$;

-- A jsonb object the way msgspec writes the dict it decodes to (see the header).
CREATE OR REPLACE FUNCTION wire_jsonb(v jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_strip_nulls(v) = v THEN json_strip_nulls(v::json)::text ELSE v::text END
$$;

-- clarin.wire.tags.Tag
CREATE OR REPLACE FUNCTION wire_tag(t tags) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN '{"id":"' || t.id || '","account_id":"' || t.account_id || '","name":' || wire_str(t.name)
        || ',"color":' || wire_str(t.color) || ',"created_at":"' || wire_ts(t.created_at)
        || '","updated_at":"' || wire_ts(t.updated_at) || '"}';
END
$$;

-- clarin.wire.leads.Lead. ``ps`` is the lead's stage (all NULL without one), ``structured_tags`` the JSON array
-- of its tags or NULL (the caller's join: PL/pgSQL would run a subquery here once per lead).
CREATE OR REPLACE FUNCTION wire_lead(l leads, ps pipeline_stages, structured_tags text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN '{"id":"' || l.id || '","account_id":"' || l.account_id || '"'
        || coalesce(',"contact_id":"' || l.contact_id || '"', '')
        || ',"jid":' || wire_str(l.jid)
        || coalesce(',"name":' || to_json(l.name), '')
        || coalesce(',"last_name":' || to_json(l.last_name), '')
        || coalesce(',"short_name":' || to_json(l.short_name), '')
        || coalesce(',"phone":' || to_json(l.phone), '')
        || coalesce(',"email":' || to_json(l.email), '')
        || coalesce(',"company":' || to_json(l.company), '')
        || coalesce(',"age":' || l.age, '')
        || coalesce(',"status":' || to_json(l.status), '')
        || coalesce(',"pipeline_id":"' || l.pipeline_id || '"', '')
        || coalesce(',"stage_id":"' || l.stage_id || '"', '')
        || coalesce(',"source":' || to_json(l.source), '')
        || coalesce(',"notes":' || to_json(l.notes), '')
        || CASE WHEN cardinality(l.tags) > 0 THEN ',"tags":' || array_to_json(l.tags) ELSE '' END
        || CASE WHEN jsonb_typeof(l.custom_fields) = 'object' AND l.custom_fields <> '{}'::jsonb
                THEN ',"custom_fields":' || wire_jsonb(l.custom_fields) ELSE '' END
        || coalesce(',"assigned_to":"' || l.assigned_to || '"', '')
        || ',"created_at":"' || wire_ts(l.created_at) || '","updated_at":"' || wire_ts(l.updated_at) || '"'
        || coalesce(',"structured_tags":' || structured_tags, '')
        || coalesce(',"stage_name":' || to_json(ps.name), '')
        || coalesce(',"stage_color":' || to_json(ps.color), '')
        || coalesce(',"stage_position":' || ps.position, '')
        || '}';
END
$$;

-- clarin.wire.messages.Reaction
CREATE OR REPLACE FUNCTION wire_reaction(r message_reactions) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN '{"id":"' || r.id || '","account_id":"' || r.account_id || '","chat_id":"' || r.chat_id
        || '","target_message_id":' || wire_str(r.target_message_id) || ',"sender_jid":' || wire_str(r.sender_jid)
        || coalesce(',"sender_name":' || to_json(r.sender_name), '')
        || ',"emoji":' || wire_str(r.emoji) || ',"is_from_me":' || r.is_from_me
        || ',"timestamp":"' || wire_ts(r."timestamp") || '","created_at":"' || wire_ts(r.created_at) || '"}';
END
$$;

-- clarin.wire.messages.PollOption (no key omitted)
CREATE OR REPLACE FUNCTION wire_poll_option(o poll_options) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN '{"id":"' || o.id || '","message_id":"' || o.message_id || '","name":' || wire_str(o.name)
        || ',"vote_count":' || o.vote_count || '}';
END
$$;

-- clarin.wire.messages.PollVote (no key omitted: selected_names may be null)
CREATE OR REPLACE FUNCTION wire_poll_vote(v poll_votes) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN '{"id":"' || v.id || '","message_id":"' || v.message_id || '","voter_jid":' || wire_str(v.voter_jid)
        || ',"selected_names":' || coalesce(array_to_json(v.selected_names)::text, 'null')
        || ',"timestamp":"' || wire_ts(v."timestamp") || '"}';
END
$$;

-- clarin.wire.messages.Message. ``reactions``, ``poll_options``, ``poll_votes``: JSON arrays or NULL (the caller
-- joins them for the whole page); the poll keys are written for polls only.
CREATE OR REPLACE FUNCTION wire_message(m messages, reactions text, poll_options text, poll_votes text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN '{"id":"' || m.id || '","account_id":"' || m.account_id || '"'
        || coalesce(',"device_id":"' || m.device_id || '"', '')
        || ',"chat_id":"' || m.chat_id || '","message_id":' || wire_str(m.message_id)
        || coalesce(',"from_jid":' || to_json(m.from_jid), '')
        || coalesce(',"from_name":' || to_json(m.from_name), '')
        || coalesce(',"body":' || to_json(m.body), '')
        || coalesce(',"message_type":' || to_json(m.message_type), '')
        || coalesce(',"media_url":' || to_json(m.media_url), '')
        || coalesce(',"media_mimetype":' || to_json(m.media_mimetype), '')
        || coalesce(',"media_filename":' || to_json(m.media_filename), '')
        || coalesce(',"media_size":' || m.media_size, '')
        || ',"is_from_me":' || m.is_from_me || ',"is_read":' || m.is_read
        || coalesce(',"status":' || to_json(m.status), '')
        || ',"timestamp":"' || wire_ts(m."timestamp") || '","created_at":"' || wire_ts(m.created_at) || '"'
        || coalesce(',"quoted_message_id":' || to_json(m.quoted_message_id), '')
        || coalesce(',"quoted_body":' || to_json(m.quoted_body), '')
        || coalesce(',"quoted_sender":' || to_json(m.quoted_sender), '')
        || coalesce(',"reactions":' || reactions, '')
        || CASE WHEN m.message_type = 'poll'
                THEN coalesce(',"poll_question":' || to_json(m.poll_question), '')
                  || coalesce(',"poll_options":' || poll_options, '')
                  || coalesce(',"poll_votes":' || poll_votes, '')
                  || coalesce(',"poll_max_selections":' || m.poll_max_selections, '')
                ELSE '' END
        || '}';
END
$$;

-- clarin.wire.contacts.Contact as the list shows it (no device_names). ``structured_tags``: JSON array or NULL.
CREATE OR REPLACE FUNCTION wire_contact(c contacts, structured_tags text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN '{"id":"' || c.id || '","account_id":"' || c.account_id || '"'
        || coalesce(',"device_id":"' || c.device_id || '"', '')
        || ',"jid":' || wire_str(c.jid)
        || coalesce(',"phone":' || to_json(c.phone), '')
        || coalesce(',"name":' || to_json(c.name), '')
        || coalesce(',"last_name":' || to_json(c.last_name), '')
        || coalesce(',"short_name":' || to_json(c.short_name), '')
        || coalesce(',"custom_name":' || to_json(c.custom_name), '')
        || coalesce(',"push_name":' || to_json(c.push_name), '')
        || coalesce(',"avatar_url":' || to_json(c.avatar_url), '')
        || coalesce(',"email":' || to_json(c.email), '')
        || coalesce(',"company":' || to_json(c.company), '')
        || coalesce(',"age":' || c.age, '')
        || coalesce(',"tags":' || array_to_json(NULLIF(array_remove(c.tags, NULL), '{}')), '')
        || coalesce(',"notes":' || to_json(c.notes), '')
        || coalesce(',"source":' || to_json(c.source), '')
        || ',"is_group":' || c.is_group
        || ',"created_at":"' || wire_ts(c.created_at) || '","updated_at":"' || wire_ts(c.updated_at) || '"'
        || coalesce(',"structured_tags":' || structured_tags, '')
        || '}';
END
$$;
