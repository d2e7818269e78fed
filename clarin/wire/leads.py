"""Lead wire types (spec api.md §4.7 and §7, schema.md §3.11).

``Lead`` follows the Go json tags: keys marked ``?`` in the spec are omitted when null; ``tags``,
``custom_fields`` and ``structured_tags`` are omitted when empty (the service turns ``[]``/``{}``
into ``None``). String fields keep ``""`` when the column holds an empty string, as the original's
pointer fields did; ``stage_position`` 0 is sent (the first stage has position 0).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from clarin.wire.tags import Tag


class Lead(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    account_id: str
    contact_id: str | None = None
    jid: str
    name: str | None = None
    last_name: str | None = None
    short_name: str | None = None
    phone: str | None = None
    email: str | None = None
    company: str | None = None
    age: int | None = None
    status: str | None = None
    pipeline_id: str | None = None
    stage_id: str | None = None
    source: str | None = None
    notes: str | None = None
    tags: list[str] | None = None
    custom_fields: dict[str, Any] | None = None
    assigned_to: str | None = None
    created_at: datetime
    updated_at: datetime
    structured_tags: list[Tag] | None = None
    stage_name: str | None = None
    stage_color: str | None = None
    stage_position: int | None = None


# -- request bodies ---------------------------------------------------------------------------------
class LeadCreateBody(msgspec.Struct):
    """R38. ``stage_id`` is typed: an invalid UUID fails the whole body (400), as in the original."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    source: str | None = None
    notes: str | None = None
    stage_id: uuid.UUID | None = None


class LeadUpdateBody(msgspec.Struct):
    """R41 partial update: only keys present (and not null) are applied.

    ``assigned_to``/``stage_id``/``pipeline_id``: ``""`` clears the column, a UUID of the caller's
    account sets it; anything else is a 400/404 (the original silently ignored invalid values).
    """

    name: str | msgspec.UnsetType | None = msgspec.UNSET
    last_name: str | msgspec.UnsetType | None = msgspec.UNSET
    short_name: str | msgspec.UnsetType | None = msgspec.UNSET
    phone: str | msgspec.UnsetType | None = msgspec.UNSET
    email: str | msgspec.UnsetType | None = msgspec.UNSET
    company: str | msgspec.UnsetType | None = msgspec.UNSET
    status: str | msgspec.UnsetType | None = msgspec.UNSET
    source: str | msgspec.UnsetType | None = msgspec.UNSET
    notes: str | msgspec.UnsetType | None = msgspec.UNSET
    age: int | msgspec.UnsetType | None = msgspec.UNSET  # range checked by the service (0..MAX_AGE)
    tags: list[str] | msgspec.UnsetType | None = msgspec.UNSET
    custom_fields: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    assigned_to: str | msgspec.UnsetType | None = msgspec.UNSET
    stage_id: str | msgspec.UnsetType | None = msgspec.UNSET
    pipeline_id: str | msgspec.UnsetType | None = msgspec.UNSET


class LeadBatchDeleteBody(msgspec.Struct):
    """R39 (same contract as R22). ``all`` and ``delete_all`` are synonyms."""

    ids: list[str] | None = None
    all: bool = False
    delete_all: bool = False


class LeadStatusBody(msgspec.Struct):
    status: str | None = None


class LeadStageBody(msgspec.Struct):
    stage_id: str | None = None


# -- responses --------------------------------------------------------------------------------------
class LeadsResponse(msgspec.Struct):
    """R37. ``total``/``total_capped``/``limit``/``offset``/``next_cursor`` only in paged mode (any paging or
    filter parameter).

    ``total``: exact without a filter; with one (search, pipeline, stage, tags) exact up to 300 leads, above that
    ``total`` is 300 and ``total_capped`` is true. ``next_cursor``: pass it back as ``?cursor=`` for the next
    page (keyset: the same cost at any depth); null on the last page."""

    leads: list[Lead]
    total: int | msgspec.UnsetType = msgspec.UNSET
    limit: int | msgspec.UnsetType = msgspec.UNSET
    offset: int | msgspec.UnsetType = msgspec.UNSET
    total_capped: bool | msgspec.UnsetType = msgspec.UNSET
    next_cursor: str | msgspec.UnsetType | None = msgspec.UNSET
    success: bool = True


class LeadResponse(msgspec.Struct):
    lead: Lead
    success: bool = True


class MessageResponse(msgspec.Struct):
    message: str
    success: bool = True


# -- WebSocket payload ------------------------------------------------------------------------------
class LeadUpdateEvent(msgspec.Struct, omit_defaults=True):
    """``lead_update`` data: ``action`` plus whichever of lead_id / ids / count applies."""

    action: str
    lead_id: str | None = None
    ids: list[str] | None = None
    count: int | None = None
