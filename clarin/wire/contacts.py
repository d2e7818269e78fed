"""Contact wire types (spec api.md §4.12 and §7, schema.md §3.5–3.6).

Keys marked ``?`` in the spec are omitted when null; ``tags``, ``device_names`` and
``structured_tags`` are omitted when empty (Go ``omitempty``). ``kommo_id`` was never loaded by the
original's contact reads, so it is never sent.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from clarin.wire._fields import Age, Str50, Str100, Str255, Text
from clarin.wire.tags import Tag


class ContactDeviceName(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    contact_id: str
    device_id: str
    name: str | None = None
    push_name: str | None = None
    business_name: str | None = None
    synced_at: datetime
    device_name: str | None = None


class Contact(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    account_id: str
    device_id: str | None = None
    jid: str
    phone: str | None = None
    name: str | None = None
    last_name: str | None = None
    short_name: str | None = None
    custom_name: str | None = None
    push_name: str | None = None
    avatar_url: str | None = None
    email: str | None = None
    company: str | None = None
    age: int | None = None
    tags: list[str] | None = None
    notes: str | None = None
    source: str | None = None
    is_group: bool
    created_at: datetime
    updated_at: datetime
    device_names: list[ContactDeviceName] = msgspec.field(default_factory=list)
    structured_tags: list[Tag] = msgspec.field(default_factory=list)


# -- request bodies ---------------------------------------------------------------------------------
class ContactUpdateBody(msgspec.Struct):
    """R80 partial update: only keys present and not null are applied; ``""`` clears a text field."""

    custom_name: Str255 | None = None
    last_name: Str255 | None = None
    short_name: Str100 | None = None
    phone: Str50 | None = None
    email: Str255 | None = None
    company: Str255 | None = None
    notes: Text | None = None
    age: Age | None = None
    tags: list[Str255] | None = None


class MergeBody(msgspec.Struct):
    """R77. Typed UUIDs: an invalid id fails the whole body (``400 invalid body``), as in the original."""

    keep_id: uuid.UUID
    merge_ids: list[uuid.UUID] = msgspec.field(default_factory=list)


class IdsBody(msgspec.Struct):
    ids: list[uuid.UUID] = msgspec.field(default_factory=list)


# -- responses --------------------------------------------------------------------------------------
class ContactsPage(msgspec.Struct, kw_only=True):
    """R75. ``total_capped`` and ``next_cursor`` are additive (issue 17): a filtered ``total`` is exact up to the cap
    (clarin.http.totals; ``total_capped`` true = more rows match and ``total`` is the cap); ``next_cursor`` is
    the ``cursor`` of the next page, null after the last one."""

    contacts: list[Contact]
    total: int
    total_capped: bool = False
    limit: int
    offset: int
    next_cursor: str | None = None
    success: bool = True


class ContactResponse(msgspec.Struct):
    contact: Contact
    success: bool = True


class DuplicatesResponse(msgspec.Struct):
    duplicates: list[list[Contact]]
    success: bool = True


class MergeResponse(msgspec.Struct):
    merged: int
    success: bool = True


class BatchDeleteResponse(msgspec.Struct):
    deleted: int
    success: bool = True
