"""Event and participant wire types (spec api.md §4.13 and §7, schema.md §3.17–3.18).

``participant_counts`` is omitted when the event has no participants; ``total_participants`` is
always sent. Participants always carry ``tags`` as an array (``[]`` when none), on every route, and
never ``last_interaction`` (the original never set it).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from clarin.wire._fields import Age, Str20, Str50, Str100, Str255, Str500, Text, Timestamp
from clarin.wire.tags import Tag


class Event(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    account_id: str
    name: str
    description: str | None = None
    event_date: datetime | None = None
    event_end: datetime | None = None
    location: str | None = None
    status: str
    color: str
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime
    participant_counts: dict[str, int] = msgspec.field(default_factory=dict)
    total_participants: int


class Participant(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    event_id: str
    contact_id: str | None = None
    name: str
    last_name: str | None = None
    short_name: str | None = None
    phone: str | None = None
    email: str | None = None
    age: int | None = None
    status: str
    notes: str | None = None
    next_action: str | None = None
    next_action_date: datetime | None = None
    invited_at: datetime | None = None
    confirmed_at: datetime | None = None
    attended_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    tags: list[Tag]


# -- request bodies ---------------------------------------------------------------------------------
class EventCreateBody(msgspec.Struct):
    name: Str255 = ""
    description: Text | None = None
    event_date: Timestamp | None = None
    event_end: Timestamp | None = None
    location: Str500 | None = None
    color: Str20 | None = None
    status: Str50 | None = None


class EventUpdateBody(msgspec.Struct):
    """R89 partial update: keys absent or null keep their value; ``""`` clears an optional text field."""

    name: Str255 | None = None
    description: Text | None = None
    event_date: Timestamp | None = None
    event_end: Timestamp | None = None
    location: Str500 | None = None
    color: Str20 | None = None
    status: Str50 | None = None


class ParticipantInput(msgspec.Struct):
    name: Str255 = ""
    contact_id: str | None = None
    last_name: Str255 | None = None
    short_name: Str100 | None = None
    phone: Str50 | None = None
    email: Str255 | None = None
    age: Age | None = None


class BulkParticipantsBody(msgspec.Struct):
    participants: list[ParticipantInput] = msgspec.field(default_factory=list)


class ParticipantUpdateBody(msgspec.Struct):
    """R94 partial update: keys absent or null keep their value; ``""`` clears an optional text field."""

    name: Str255 | None = None
    last_name: Str255 | None = None
    short_name: Str100 | None = None
    phone: Str50 | None = None
    email: Str255 | None = None
    notes: Text | None = None
    next_action: Text | None = None
    age: Age | None = None
    next_action_date: Timestamp | None = None


class ParticipantStatusBody(msgspec.Struct):
    status: Str50 = ""


# -- responses --------------------------------------------------------------------------------------
class EventsPage(msgspec.Struct):
    events: list[Event]
    total: int
    success: bool = True


class EventsResponse(msgspec.Struct):
    events: list[Event]
    success: bool = True


class EventResponse(msgspec.Struct):
    event: Event
    success: bool = True


class ParticipantsPage(msgspec.Struct):
    participants: list[Participant]
    total: int
    success: bool = True


class ParticipantResponse(msgspec.Struct):
    participant: Participant
    success: bool = True


class ActionsResponse(msgspec.Struct):
    actions: list[Participant]
    success: bool = True


class BulkAddResponse(msgspec.Struct):
    """``count`` = participants submitted (as the original); ``added``/``skipped`` split it."""

    count: int
    added: int
    skipped: int
    success: bool = True
