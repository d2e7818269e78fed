"""Interaction wire types (spec api.md §4.14 and §7, schema.md §3.19).

``created_by_name`` (the author's display name) and ``event_name`` are joined on every read.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from clarin.wire._fields import Str20, Str50, Text, Timestamp


class Interaction(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    account_id: str
    contact_id: str | None = None
    lead_id: str | None = None
    event_id: str | None = None
    participant_id: str | None = None
    type: str
    direction: str | None = None
    outcome: str | None = None
    notes: str | None = None
    next_action: str | None = None
    next_action_date: datetime | None = None
    created_by: str | None = None
    created_at: datetime
    created_by_name: str | None = None
    event_name: str | None = None


class InteractionCreateBody(msgspec.Struct):
    type: Str50 = ""
    contact_id: str | None = None
    lead_id: str | None = None
    event_id: str | None = None
    participant_id: str | None = None
    direction: Str20 | None = None
    outcome: Str50 | None = None
    notes: Text | None = None
    next_action: Text | None = None
    next_action_date: Timestamp | None = None


class InteractionsResponse(msgspec.Struct):
    interactions: list[Interaction]
    success: bool = True


class InteractionResponse(msgspec.Struct):
    interaction: Interaction
    success: bool = True
