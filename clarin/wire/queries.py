"""Query parameters of the list and lookup routes, one struct per route (``query=`` in the route decorator).

Handlers still read the query string themselves (``req.query_str`` / ``query_int`` / ``query_bool`` /
``query_list``, ``page_params``, ``list_window``): these structs only *document* what they read, and
tests/test_openapi.py fails when a handler reads a name its route does not declare here (or a declared
name is read nowhere). clarin/http/openapi.py turns every field into an ``in: query`` parameter.

Reading rules (api.md §1): integers are lenient (missing, non-numeric or beyond int64 → the default),
booleans accept ``1,t,T,TRUE,true,True`` / ``0,f,F,FALSE,false,False`` (anything else → the default),
list parameters may be repeated and/or comma-separated (blank entries dropped). Defaults below are the
effective ones: the handler's own constants (``limit`` caps are ``MAX_LIMIT`` = 1000 unless noted).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

Offset = Annotated[int, Meta(description="Rows to skip; negative → 0.")]
# ``limit`` of the routes that page with clarin.http.paging.page_params: ``<=0`` → the default, capped.
CappedLimit = Annotated[int, Meta(description="Page size; missing or <=0 → the default; capped at 1000.")]


class AdminPageQuery(msgspec.Struct, kw_only=True):
    """GET /api/admin/accounts."""

    limit: Annotated[int, Meta(description="Page size; missing or <=0 → 1000; capped at 1000.")] = 1000
    offset: Offset = 0


class AdminUsersQuery(AdminPageQuery, kw_only=True):
    """GET /api/admin/users."""

    account_id: Annotated[uuid.UUID | None, Meta(
        description="Only users whose primary account is this one; malformed → 400 Invalid account_id.")] = None


class ContactsQuery(msgspec.Struct, kw_only=True):
    """GET /api/contacts."""

    search: Annotated[str, Meta(
        description="Substring of name, last/short/custom/push name, phone, JID, email or company; trimmed; at "
                    "least 3 characters (1-2 → 400 search must be at least 3 characters).")] = ""
    is_group: Annotated[bool, Meta(description="Group contacts instead of people.")] = False
    device_id: Annotated[uuid.UUID | None, Meta(
        description="Only contacts synced from this device; malformed → ignored.")] = None
    has_phone: Annotated[bool, Meta(description="Only contacts with a phone number.")] = False
    tags: Annotated[list[str], Meta(
        description="Legacy string tags (any of); repeated and/or comma-separated.")] = []
    tag_ids: Annotated[list[uuid.UUID], Meta(
        description="Structured tag IDs (any of); repeated and/or comma-separated; malformed → 400.")] = []
    limit: Annotated[int, Meta(description="Page size; <=0 → 1000; capped at 1000.")] = 50
    offset: Annotated[int, Meta(description="Rows to skip (after the cursor, if any); negative → 0.")] = 0
    cursor: Annotated[str, Meta(description=(
        "Keyset paging: the next_cursor of the previous page (opaque); the page starts after that contact, at "
        "the same cost at any depth. Combines with the filters and search; malformed → 400 Invalid cursor."))] = ""


class InteractionsPageQuery(msgspec.Struct, kw_only=True):
    """GET /api/contacts/{id}/interactions and /api/leads/{id}/interactions."""

    limit: Annotated[int, Meta(description="Page size; <=0 → 50; capped at 1000.")] = 50
    offset: Offset = 0


class InteractionsQuery(InteractionsPageQuery, kw_only=True):
    """GET /api/interactions: the first valid ID in this order wins; none → 400."""

    participant_id: Annotated[uuid.UUID | None, Meta(
        description="All interactions of this event participant (default limit 1000); malformed → ignored.")] = None
    event_id: Annotated[uuid.UUID | None, Meta(description="Interactions of this event; malformed → ignored.")] = None
    contact_id: Annotated[uuid.UUID | None, Meta(
        description="Interactions of this contact; malformed → ignored.")] = None
    lead_id: Annotated[uuid.UUID | None, Meta(description="Interactions of this lead; malformed → ignored.")] = None


class EventsQuery(msgspec.Struct, kw_only=True):
    """GET /api/events."""

    search: Annotated[str, Meta(description="Substring of the name, description or location.")] = ""
    status: Annotated[str, Meta(description="Exact event status; empty → any.")] = ""
    limit: Annotated[int, Meta(description="Page size; <=0 → 1000; capped at 1000.")] = 50
    offset: Offset = 0


class UpcomingActionsQuery(msgspec.Struct, kw_only=True):
    """GET /api/events/upcoming-actions (soonest first, no offset)."""

    limit: Annotated[int, Meta(description="How many actions; missing or <=0 → 20; capped at 1000.")] = 20


class ParticipantsQuery(msgspec.Struct, kw_only=True):
    """GET /api/events/{id}/participants."""

    search: Annotated[str, Meta(description="Substring of the name, last name, phone or email.")] = ""
    status: Annotated[str, Meta(description="Exact participant status; empty → any.")] = ""
    tags: Annotated[list[uuid.UUID], Meta(
        description="Tag IDs (any of); repeated and/or comma-separated; malformed → 400.")] = []
    has_phone: Annotated[bool, Meta(
        description="Only participants with a phone; only the literal `true` applies.")] = False
    limit: Annotated[int, Meta(description="Page size; <=0 → 1000; capped at 1000.")] = 1000
    offset: Offset = 0


class PageQuery(msgspec.Struct, kw_only=True):
    """Quick replies, tags, devices, campaign recipients: everything by default, in pages of up to 1000."""

    limit: CappedLimit = 1000
    offset: Offset = 0


class LeadsQuery(msgspec.Struct, kw_only=True):
    """GET /api/leads: without any of these the whole board is served; with any, a filtered page."""

    search: Annotated[str, Meta(description=(
        "Case-insensitive substring of name, last name, phone, email, company or JID; trimmed; at least 3 "
        "characters (1-2 → 400 search must be at least 3 characters); a NUL character → 400."))] = ""
    pipeline_id: Annotated[uuid.UUID | None, Meta(description="Only leads of this pipeline; malformed → 400.")] = None
    stage_id: Annotated[uuid.UUID | None, Meta(description="Only leads in this stage; malformed → 400.")] = None
    tag_ids: Annotated[list[uuid.UUID], Meta(
        description="Tag IDs (any of); repeated and/or comma-separated; malformed → 400.")] = []
    limit: Annotated[int, Meta(description="Page size; missing or <=0 → 50; capped at 1000.")] = 50
    offset: Annotated[int, Meta(description="Rows to skip (after the cursor, if any); negative → 0.")] = 0
    cursor: Annotated[str, Meta(description=(
        "Keyset paging: the next_cursor of the previous page (opaque); the page starts after that lead, at "
        "the same cost at any depth. Combines with the filters and search; malformed → 400 Invalid cursor."))] = ""


class ChatsQuery(msgspec.Struct, kw_only=True):
    """GET /api/chats."""

    search: Annotated[str, Meta(
        description="Substring of the chat name or JID, or of its contact's names, phone, JID, email or company; "
                    "trimmed; at least 3 characters (1-2 → 400 search must be at least 3 characters).")] = ""
    archived: Annotated[bool, Meta(description="Include archived chats (false → exclude them).")] = False
    unread_only: Annotated[bool, Meta(description="Only chats with unread messages.")] = False
    device_ids: Annotated[list[uuid.UUID], Meta(
        description="Device IDs (any of); repeated and/or comma-separated; malformed entries ignored.")] = []
    tag_ids: Annotated[list[uuid.UUID], Meta(
        description="Tag IDs of the chat's contact (any of); repeated and/or comma-separated; "
                    "malformed entries ignored.")] = []
    limit: Annotated[int, Meta(description="Page size; <=0 → 1000; capped at 1000.")] = 50
    offset: Annotated[int, Meta(description="Rows to skip (after the cursor, if any); negative → 0.")] = 0
    cursor: Annotated[str, Meta(description=(
        "Keyset paging: the next_cursor of the previous page (opaque); the page starts after that chat, at "
        "the same cost at any depth. Combines with the filters and search; malformed → 400 Invalid cursor."))] = ""


class ChatMessagesQuery(msgspec.Struct, kw_only=True):
    """GET /api/chats/{id}/messages, newest first."""

    limit: Annotated[int, Meta(description="Page size; missing or <=0 → 50; capped at 500.")] = 50
    offset: Offset = 0
    before: Annotated[Annotated[datetime, Meta(tz=True)] | None, Meta(
        description="Keyset cursor: only messages older than this RFC 3339 time (with zone); else 400.")] = None
    before_id: Annotated[uuid.UUID | None, Meta(
        description="Keyset cursor: only messages older than this message; malformed → 400.")] = None


class UploadURLQuery(msgspec.Struct, kw_only=True):
    """GET /api/media/upload-url."""

    filename: Annotated[str, Meta(description="Original file name; missing or empty → 400.")]
    folder: Annotated[str, Meta(description="Folder under the account's prefix.")] = "uploads"


class DevSentQuery(msgspec.Struct, kw_only=True):
    """GET /api/dev/whatsapp/{device_id}/sent (simulated driver only)."""

    here: Annotated[bool, Meta(
        description="true: this server process's own record, not routed to the process running the device.")] = False
